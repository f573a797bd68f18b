"""Mixed pooling: a learnable blend of max and average pooling."""

from __future__ import annotations

import math

import torch
from torch import nn

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.layout import as_float
from globalpool.pool.registry import register_pool

__all__ = ["MixedPool"]


@register_pool(
    "mixed",
    "learnable blend alpha*max + (1-alpha)*avg",
    "y_c = a max_s x_{c,s} + (1 - a) mean_s x_{c,s}, a = sigmoid(w)",
)
class MixedPool(GlobalPoolBase):
    """Mixed pooling: ``alpha * max + (1 - alpha) * avg``.

    A learnable alpha is ``sigmoid(alpha_logit)``, so it stays in (0, 1).

    Args:
        channels: accepted for a uniform constructor, unused.
        alpha: initial (or fixed) blend; in (0, 1) when learnable, [0, 1] when fixed.
        learn_alpha: learn alpha (default True).
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, C), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> MixedPool(alpha=0.25, learn_alpha=False)(torch.tensor([[[0.0, 4.0]]]))
        tensor([[2.5000]])
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        alpha: float = 0.5,
        learn_alpha: bool = True,
        data_format: str = "channels_first",
        keepdim: bool = False,
        compiled: bool = False,
    ):
        super().__init__(channels, data_format=data_format, keepdim=keepdim, compiled=compiled)
        self.learn_alpha = bool(learn_alpha)
        if self.learn_alpha:
            if not 0.0 < alpha < 1.0:
                raise ValueError(f"a learnable alpha must start in (0, 1), got {alpha!r}")
            self.alpha_logit = nn.Parameter(torch.tensor(math.log(alpha / (1.0 - alpha))))
        else:
            if not 0.0 <= alpha <= 1.0:
                raise ValueError(f"mixed pool expects alpha in [0, 1], got {alpha!r}")
            self.fixed_alpha = float(alpha)

    @property
    def alpha(self) -> torch.Tensor | float:
        """The current blend (a 0-d tensor when learnable)."""
        return torch.sigmoid(self.alpha_logit) if self.learn_alpha else self.fixed_alpha

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.mixed_pool(x, mask, alpha=self.alpha, **self._kw())

    def _repr_extras(self) -> list[str]:
        return [f"alpha={as_float(self.alpha):.4g}, learn_alpha={self.learn_alpha}"]
