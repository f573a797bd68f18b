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
    at a quarter of the pixels.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(out_ch),
            nn.GELU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.GELU(),
        )


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

    Args:
        in_chans: input channels.
        widths: channels of the three groups.
        stem_width: channels of the 2x2 stem conv (``stem="conv"`` only).
        stem: ``conv`` (learned) or ``whiten`` (data-initialised, frozen weights).

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
    ) -> None:
        if stem not in ("conv", "whiten"):
            raise ValueError(f"fastnet stem must be 'conv' or 'whiten'; got {stem!r}")
        if stem == "whiten":
            stem_width = 2 * in_chans * 2 * 2
        layers: list[nn.Module] = [nn.Conv2d(in_chans, stem_width, 2), nn.GELU()]
        ch = stem_width
        for width in widths:
            layers.append(_ConvGroup(ch, width))
            ch = width
        super().__init__(*layers)
        self.num_features = ch
        self.stem = stem
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
