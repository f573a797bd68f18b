"""``Head``: what every classification head says about itself.

Input shape: (N, C, H, W) feature maps. Output shape: (N, num_classes) logits.

Attributes every head sets:
    in_channels: C. num_classes: K.
    num_features: width of :meth:`pre_logits`' output.
    pool_name: the global pool's registry name, None for the FC head (it flattens).
    fixed_size: True when the head takes only the feature size it was built for (FC),
        so the model takes only its training input size.
    feature_size: (h, w) the head was built for, None where any size goes.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Head"]


class Head(nn.Module):
    """Base of the heads: the shared attributes, and ``reset`` of their parameters."""

    in_channels: int
    num_classes: int
    num_features: int
    pool_name: str | None = None
    fixed_size: bool = False
    feature_size: tuple[int, int] | None = None

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, num_features): what the last layer sees."""
        raise NotImplementedError

    def reset(self) -> None:
        """Re-initialise every parameter (as a freshly built head)."""
        for module in self.modules():
            if module is not self and callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
