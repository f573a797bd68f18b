"""fastnet: the default network for 32x32 images, built for speed on CPU and GPU."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from globalpool.models.registry import register_model

__all__ = ["FastNet"]


class _ConvGroup(nn.Sequential):
    """conv 3x3 -> 2x2 max pool -> BN -> GELU -> conv 3x3 -> BN -> GELU.

    Pooling right after the first conv makes the second conv (and everything after) run
    at a quarter of the pixels. ``norm`` builds each batch norm from its channel count.
    """

    def __init__(self, in_ch: int, out_ch: int, norm) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            norm(out_ch),
            nn.GELU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            norm(out_ch),
            nn.GELU(),
        )


def _batch_norm(channels: int, momentum: float, eps: float, scale: bool) -> nn.BatchNorm2d:
    """BatchNorm2d whose scale (gamma) stays 1 when ``scale`` is False (only the shift
    trains, as Keras' ``BatchNormalization(scale=False)``)."""
    norm = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    norm.weight.requires_grad_(scale)
    return norm


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@torch.no_grad()
def identity_init_(conv: nn.Conv2d) -> None:
    """Make the first ``min(out, in)`` filters of a conv pass their input channel through
    unchanged (a Dirac delta at the kernel's centre); the other filters keep their random
    initialisation. The net then starts close to its shallower, identity-mapped self."""
    n = min(conv.out_channels, conv.in_channels // conv.groups)
    nn.init.dirac_(conv.weight[:n])


@register_model(
    "fastnet",
    summary="fast default for 32x32: 2x2 stem (learned or whitening) + 3 conv-pool-BN-GELU "
    "groups, pool + linear",
    default_head="pool-linear",
    head_defaults={"fc": {"hidden": [256], "dropout": 0.5}},
)
class FastNet(nn.Sequential):
    """A 2x2 stem conv, then three groups of conv-pool-BN-GELU-conv-BN-GELU.

    Source: the layout of airbench (K. Jordan, "94% on CIFAR-10 in 3.29 seconds on a single
    GPU", arXiv:2404.00498, 2024; github.com/KellerJordan/cifar10-airbench): few, wide
    layers, pooling straight after the first conv of each group, batch norm, GELU. Its
    data-dependent whitening initialisation, lookahead, label smoothing and TTA are left to
    the training loop; the stem here is an ordinary learned 2x2 conv. The default widths
    (32, 64, 128) are narrower than airbench's (64, 256, 256), for CPU training: 39.8 vs
    236.3 MFLOPs per 32x32 image, and 3.9x the training throughput in the same run (242 vs
    62 images/s, batch 256, one thread of the project's shared 2-core CPU under load, from
    ``benchmarks/bench_models.py fastnet fastnet:widths=64,256,256 --threads 1``). Pass
    ``widths=(64, 256, 256)`` for the airbench size on a GPU. 32x32 -> 31 (stem) -> 15 ->
    7 -> 3x3 feature maps.

    With ``stem="whiten"`` the stem is airbench's whitening layer instead: its weights are
    set once from training images (:meth:`init_from_data`, which the training loop calls)
    to the eigenvectors of the 2x2-patch covariance, scaled to unit variance, each with its
    negative (so GELU passes both signs), and then frozen; only its bias trains. Its width
    is ``2 * in_chans * 4`` (24 for RGB).

    The other settings of airbench's network are options, off by default:
    ``identity_init=True`` starts every 3x3 conv as a partial identity (its first
    ``min(out, in)`` filters copy their input channel, :func:`identity_init_`);
    ``bn_momentum=0.4, bn_eps=1e-12, bn_scale=False`` are its batch norms (fast-moving
    running statistics; the scale fixed at 1, only the shift trains).

    Args:
        in_chans: input channels.
        widths: channels of the three groups.
        stem_width: channels of the 2x2 stem conv (``stem="conv"`` only).
        stem: ``conv`` (learned) or ``whiten`` (data-initialised, frozen weights).
        identity_init: partial identity initialisation of the 3x3 convs.
        bn_momentum, bn_eps: of every ``BatchNorm2d`` (PyTorch's convention: momentum is
            the weight of the new batch's statistics).
        bn_scale: learn the batch norms' scale (gamma); False keeps it at 1.

    Input shape: (N, in_chans, H, W), H, W >= 9. Output shape: (N, widths[-1], h, w).

    Example:
        >>> net = FastNet(widths=(8, 8, 8), stem="whiten")
        >>> net.init_from_data(torch.randn(64, 3, 32, 32))
        >>> net(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 8, 3, 3])
    """

    def __init__(
        self,
        in_chans: int = 3,
        widths: Sequence[int] = (32, 64, 128),
        stem_width: int = 24,
        stem: str = "conv",
        identity_init: bool = False,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
        bn_scale: bool = True,
    ) -> None:
        if stem not in ("conv", "whiten"):
            raise ValueError(f"fastnet stem must be 'conv' or 'whiten'; got {stem!r}")
        if not _is_number(bn_momentum) or not 0.0 < bn_momentum <= 1.0:
            raise ValueError(f"fastnet bn_momentum must be in (0, 1]; got {bn_momentum!r}")
        if not _is_number(bn_eps) or not 0.0 < bn_eps < 1.0:
            raise ValueError(f"fastnet bn_eps must be in (0, 1); got {bn_eps!r}")
        if stem == "whiten":
            stem_width = 2 * in_chans * 2 * 2
        layers: list[nn.Module] = [nn.Conv2d(in_chans, stem_width, 2), nn.GELU()]
        ch = stem_width

        def norm(channels: int) -> nn.BatchNorm2d:
            return _batch_norm(channels, bn_momentum, bn_eps, bool(bn_scale))

        for width in widths:
            layers.append(_ConvGroup(ch, width, norm))
            ch = width
        super().__init__(*layers)
        self.num_features = ch
        self.stem = stem
        if identity_init:
            for group in list(self)[2:]:  # the stem is 2x2 and set by its own rule
                for module in group.modules():
                    if isinstance(module, nn.Conv2d):
                        identity_init_(module)
        if stem == "whiten":
            self[0].weight.requires_grad_(False)

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening stem from normalised training images (N, in_chans, H, W).

        No-op for ``stem="conv"``. The 2x2 patches' (uncentred) covariance is
        eigendecomposed in float64; filter i is eigenvector i / sqrt(eigenvalue i + eps).
        """
        if self.stem != "whiten":
            return
        conv = self[0]
        if images.ndim != 4 or images.shape[1] != conv.in_channels:
            raise ValueError(
                f"init_from_data expects (N, {conv.in_channels}, H, W) images; "
                f"got shape {tuple(images.shape)}"
            )
        kh, kw = conv.kernel_size
        patches = (
            F.unfold(images.double(), (kh, kw))
            .transpose(1, 2)
            .reshape(-1, conv.in_channels * kh * kw)
        )
        covariance = patches.T @ patches / patches.shape[0]
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors / (eigenvalues + eps).sqrt()).T  # row i: eigenvector i, scaled
        filters = filters.reshape(-1, conv.in_channels, kh, kw)
        conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight))
        conv.bias.zero_()
