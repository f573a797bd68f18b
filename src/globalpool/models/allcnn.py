"""All-CNN-C (Springenberg et al. 2014)."""

from __future__ import annotations

from torch import nn

from globalpool.models.registry import register_model

__all__ = ["AllCNNC"]


def _conv(in_ch: int, out_ch: int, k: int, stride: int = 1, padding: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=padding), nn.ReLU(inplace=True)]


@register_model(
    "allcnn_c",
    summary="All-CNN-C: only convolutions (stride 2 instead of pooling), class-map head + GAP",
    default_head="classmap",
    head_defaults={"classmap": {"kernel_size": 1}, "fc": {"hidden": [256], "dropout": 0.5}},
)
class AllCNNC(nn.Sequential):
    """The All-CNN-C feature extractor.

    Source: J. T. Springenberg, A. Dosovitskiy, T. Brox, M. Riedmiller, "Striving for
    Simplicity: The All Convolutional Net", arXiv:1412.6806 (2014), ICLR 2015 workshop,
    Table 2, model C:

    input dropout 0.2; conv 3x3 96, conv 3x3 96, conv 3x3 96 stride 2, dropout 0.5;
    conv 3x3 192, conv 3x3 192, conv 3x3 192 stride 2, dropout 0.5; conv 3x3 192 (valid),
    conv 1x1 192, [conv 1x1 10, global average pool].

    The bracketed layers are the default "classmap" head (kernel 1, pool "avg"); the full
    network has 1,369,738 parameters for 10 classes (the paper rounds to 1.4M). All convs
    use ReLU; 32x32 -> 16x16 -> 8x8 -> 6x6 feature maps.

    Args:
        in_chans: input channels.
        drop_rate: dropout after each stride-2 conv.
        input_drop: dropout on the input image.

    Input shape: (N, in_chans, H, W), H, W >= 9. Output shape: (N, 192, h, w).
    """

    num_features = 192

    def __init__(self, in_chans: int = 3, drop_rate: float = 0.5, input_drop: float = 0.2):
        super().__init__(
            nn.Dropout(input_drop),
            *_conv(in_chans, 96, 3),
            *_conv(96, 96, 3),
            *_conv(96, 96, 3, stride=2),
            nn.Dropout(drop_rate),
            *_conv(96, 192, 3),
            *_conv(192, 192, 3),
            *_conv(192, 192, 3, stride=2),
            nn.Dropout(drop_rate),
            *_conv(192, 192, 3, padding=0),
            *_conv(192, 192, 1, padding=0),
        )
