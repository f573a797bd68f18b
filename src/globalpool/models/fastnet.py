"""fastnet: the default network for 32x32 images, built for speed on CPU and GPU."""

from __future__ import annotations

from collections.abc import Sequence

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
    summary="fast default for 32x32: 2x2 stem + 3 conv-pool-BN-GELU groups, pool + linear",
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

    Args:
        in_chans: input channels.
        widths: channels of the three groups.
        stem_width: channels of the 2x2 stem conv.

    Input shape: (N, in_chans, H, W), H, W >= 9. Output shape: (N, widths[-1], h, w).
    """

    def __init__(
        self, in_chans: int = 3, widths: Sequence[int] = (32, 64, 128), stem_width: int = 24
    ) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_chans, stem_width, 2), nn.GELU()]
        ch = stem_width
        for width in widths:
            layers.append(_ConvGroup(ch, width))
            ch = width
        super().__init__(*layers)
        self.num_features = ch
