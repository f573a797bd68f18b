"""LeNet-5 (LeCun et al. 1998)."""

from __future__ import annotations

from torch import nn

from globalpool.models.registry import register_model

__all__ = ["LeNet5"]


@register_model(
    "lenet5",
    summary="LeNet-5: conv5x5 6 -> pool -> conv5x5 16 -> pool, FC 120-84 head",
    default_head="fc",
    head_defaults={"fc": {"hidden": [120, 84]}},
)
class LeNet5(nn.Sequential):
    """The LeNet-5 feature extractor: conv 5x5 (6) -> 2x2 pool -> conv 5x5 (16) -> 2x2 pool.

    Source: Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied
    to document recognition", Proc. IEEE 86(11), 1998 (C1, S2, C3, S4; its C5/F6/output
    layers, FC 120 -> 84 -> classes on the 16x5x5 maps of a 32x32 input, are the default
    "fc" head). Modern variant: ReLU and max pooling instead of the scaled tanh and the
    trainable subsampling, and full C3 connectivity instead of the paper's partial table.

    Args:
        in_chans: input channels (1 for the paper's grey digits).

    Input shape: (N, in_chans, H, W), H, W >= 16. Output shape: (N, 16, h, w), 5x5 at 32x32.
    """

    num_features = 16

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_chans, 6, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
