"""Network In Network for CIFAR-10 (Lin et al. 2013)."""

from __future__ import annotations

from torch import nn

from globalpool.models.registry import register_model

__all__ = ["NIN"]


def _mlpconv(in_ch: int, widths: tuple[int, ...], kernel: int, norm: bool) -> list[nn.Module]:
    """One mlpconv block: a kxk conv, then 1x1 convs (the "micro network"), all ReLU, each
    conv followed by a BatchNorm where ``norm``."""
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        k = kernel if i == 0 else 1
        # The conv bias is redundant before a BatchNorm (its shift absorbs it).
        layers.append(nn.Conv2d(in_ch, width, k, padding=k // 2, bias=not norm))
        if norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU(inplace=True))
        in_ch = width
    return layers


@register_model(
    "nin",
    summary="Network In Network (CIFAR-10): 3 mlpconv blocks of 192, class-map head + GAP",
    default_head="classmap",
    head_defaults={"classmap": {"kernel_size": 1}, "fc": {"hidden": [256], "dropout": 0.5}},
)
class NIN(nn.Sequential):
    """The NIN feature extractor for CIFAR-10, as in its authors' cuda-convnet definition.

    Source: M. Lin, Q. Chen, S. Yan, "Network In Network", arXiv:1312.4400 (2013), ICLR
    2014; layer list from the authors' cuda-convnet CIFAR-10 configuration:

    ====================  ==========================================
    mlpconv 1             conv 5x5 192, conv 1x1 160, conv 1x1 96
                          max pool 3/2, dropout 0.5
    mlpconv 2             conv 5x5 192, conv 1x1 192, conv 1x1 192
                          avg pool 3/2, dropout 0.5
    mlpconv 3             conv 3x3 192, conv 1x1 192, [conv 1x1 10]
    head                  global average pool of the 10 class maps
    ====================  ==========================================

    The last 1x1 conv (192 -> num_classes) is the class-map head's ``conv`` (default head
    "classmap", kernel 1, pool "avg"), so the full network has 966,986 parameters for 10
    classes. Convs are "same"-padded and pools use padding 1, so 32x32 -> 16x16 -> 8x8
    (cuda-convnet's pooling rounds up); all convs are followed by ReLU. The class maps
    themselves get no ReLU here (logits may be negative).

    Args:
        in_chans: input channels.
        drop_rate: dropout after the first two mlpconv blocks.
        norm: put a BatchNorm after every conv of the feature extractor (not in the paper,
            which trained for hundreds of epochs without it; with it the network fits a
            CIFAR-10 subset within a CPU budget: ``reproduce nin-heads-cifar10``'s
            ``cpu-fit`` protocol).

    Input shape: (N, in_chans, H, W). Output shape: (N, 192, h, w), 8x8 at 32x32.
    """

    num_features = 192

    def __init__(self, in_chans: int = 3, drop_rate: float = 0.5, norm: bool = False) -> None:
        super().__init__(
            *_mlpconv(in_chans, (192, 160, 96), 5, norm),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Dropout(drop_rate),
            *_mlpconv(96, (192, 192, 192), 5, norm),
            nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
            nn.Dropout(drop_rate),
            *_mlpconv(192, (192, 192), 3, norm),
        )
