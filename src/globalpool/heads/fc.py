"""The classic fully-connected head: flatten, then Linear layers (LeNet / AlexNet / VGG)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from globalpool.heads.base import Head

__all__ = ["FCHead"]


class FCHead(Head):
    """Flatten the feature maps, then ``Linear -> ReLU -> Dropout`` per hidden layer, then
    a final ``Linear`` to the classes.

    The first Linear has ``C * H * W`` inputs, so the head is tied to the feature size it
    was built for; any other size raises a ValueError (checked before the Linear runs).

    Args:
        in_channels: C, channels of the feature maps.
        num_classes: K, number of outputs.
        feature_size: (H, W) of the feature maps, or (C, H, W) with C == in_channels.
        hidden: widths of the hidden Linear layers, e.g. (120, 84) for LeNet-5; () gives a
            single Linear from the flattened features to the classes.
        dropout: dropout probability after each hidden layer's ReLU (0 disables it).

    Input shape: (N, C, H, W). Output shape: (N, K).

    Example:
        >>> import torch
        >>> head = FCHead(16, 10, (5, 5), hidden=(120, 84))
        >>> head(torch.randn(2, 16, 5, 5)).shape
        torch.Size([2, 10])
    """

    pool_name = None
    fixed_size = True

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        feature_size: Sequence[int],
        *,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        feature_size = _check_feature_size(feature_size, in_channels)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.feature_size = feature_size
        self.hidden = tuple(int(h) for h in hidden)
        self.flatten = nn.Flatten(1)
        layers: list[nn.Module] = []
        width = in_channels * feature_size[0] * feature_size[1]
        for h in self.hidden:
            if h < 1:
                raise ValueError(f"hidden widths must be positive, got {tuple(hidden)}")
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.hidden_layers = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)
        self.num_features = width  # width of pre_logits

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, *self.feature_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"FCHead was built for features of size (C, H, W) = {expected} but received "
                f"{tuple(x.shape[1:])} (input shape {tuple(x.shape)}); an FC head only takes "
                "the input size it was built for: rebuild the model for this size or use a "
                "pooling head ('classmap', 'pool-linear')"
            )

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features through the hidden layers: (N, C, H, W) -> (N, hidden[-1])
        (or (N, C*H*W) without hidden layers)."""
        self._check_input(x)
        return self.hidden_layers(self.flatten(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pre_logits(x))

    def extra_repr(self) -> str:
        return f"feature_size={self.feature_size}, hidden={self.hidden}"


def _check_feature_size(feature_size, in_channels: int) -> tuple[int, int]:
    try:
        size = tuple(int(s) for s in feature_size)
    except TypeError:
        raise TypeError(f"feature_size must be (H, W) or (C, H, W), got {feature_size!r}") from None
    if len(size) == 3:
        if size[0] != in_channels:
            raise ValueError(
                f"feature_size {size} has {size[0]} channels but in_channels is {in_channels}"
            )
        size = size[1:]
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"feature_size must be (H, W) or (C, H, W) of positive ints, got {size}")
    return size
