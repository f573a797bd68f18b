"""A small VGG-style network."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from globalpool.models.registry import register_model

__all__ = ["VGGSmall"]


@register_model(
    "vgg_small",
    summary="small VGG: 3 stages of two 3x3 conv-BN-ReLU + 2x2 max pool, FC 256 head",
    default_head="fc",
    head_defaults={"fc": {"hidden": [256], "dropout": 0.5}},
)
class VGGSmall(nn.Sequential):
    """VGG-style stages, each two ``conv 3x3 -> BN -> ReLU`` then a 2x2 max pool.

    Source: K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale
    Image Recognition", arXiv:1409.1556 (2014): stacks of 3x3 convs between max pools
    and an FC head, here scaled down to three stages for 32x32 images, with batch norm
    (S. Ioffe, C. Szegedy 2015) as in the usual CIFAR adaptations.

    Args:
        in_chans: input channels.
        widths: channels of each stage (default 32, 64, 128: 32x32 -> 4x4x128).

    Input shape: (N, in_chans, H, W), H, W >= 2**len(widths). Output: (N, widths[-1], h, w).
    """

    def __init__(self, in_chans: int = 3, widths: Sequence[int] = (32, 64, 128)) -> None:
        layers: list[nn.Module] = []
        ch = in_chans
        for width in widths:
            for _ in range(2):
                layers += [
                    nn.Conv2d(ch, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                ch = width
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)
        self.num_features = ch
