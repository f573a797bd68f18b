"""The small GAP/GMP network of the reference article (Fashion-MNIST)."""

from __future__ import annotations

from torch import nn

from globalpool.models.registry import register_model

__all__ = ["SmallGap"]


@register_model(
    "smallgap",
    summary="the article's net: six 3x3 convs 8-8-16-16-32-32, 1x1 class maps + global pool",
    default_head="classmap",
    in_chans=1,
    input_size=(28, 28),
    head_defaults={"classmap": {"kernel_size": 1}, "fc": {"hidden": [64]}},
)
class SmallGap(nn.Sequential):
    """Six 3x3 convolutions of 8, 8, 16, 16, 32, 32 channels with a 2x2 max pool after
    every second one; the default head is a 1x1 convolution to the classes and a global
    pool ("classmap", pool "avg"; the article compares "avg" with "max").

    Source: the mission's reference article comparing global average and global max
    pooling heads on Fashion-MNIST (28x28 grey images). Its padding is not stated; here the
    convs are "same"-padded with ReLU, so 28x28 -> 14x14 -> 7x7 -> 3x3 feature maps.

    Args:
        in_chans: input channels (1 by default, for Fashion-MNIST).
        norm: put a BatchNorm after every conv (not in the article). Without it, Adam at
            lr 3e-3 left this network at chance in some seeds (BENCHMARKS.md,
            "cam-localization"); with it, every seed trains.

    Input shape: (N, in_chans, H, W), H, W >= 8. Output shape: (N, 32, h, w).
    """

    num_features = 32

    def __init__(self, in_chans: int = 1, norm: bool = False) -> None:
        layers: list[nn.Module] = []
        widths = (8, 8, 16, 16, 32, 32)
        ch = in_chans
        for i, width in enumerate(widths):
            # The conv bias is redundant before a BatchNorm (its shift absorbs it).
            layers.append(nn.Conv2d(ch, width, 3, padding=1, bias=not norm))
            if norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            ch = width
        super().__init__(*layers)
