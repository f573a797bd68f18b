"""Global weighted average pooling (GWAP): a bounded, learned spatial weight map."""

from __future__ import annotations

import torch
from torch import nn

from globalpool.pool import functional as F
from globalpool.pool.attention import AttentionPool
from globalpool.pool.registry import register_pool

__all__ = ["GlobalWeightedAvgPool"]


@register_pool(
    "gwap",
    "global weighted average (Qiu 2018): exp(sigmoid(1x1 conv)) weight map, normalised",
    "m_s = exp(sigmoid(w . x_s + b)), y_c = sum_s m_s x_{c,s} / sum_s m_s",
)
class GlobalWeightedAvgPool(AttentionPool):
    """Global weighted average pooling, the class-agnostic GWAP module of Qiu (2018).

    A 1x1 conv (C -> 1, with bias) scores every position; ``exp(sigmoid(score))``,
    normalised to sum 1 over the positions, weights the average. The sigmoid bounds the
    weights: two positions' weights differ by at most a factor e, so the map leans toward
    the object without dropping the rest (attention pooling's plain softmax can put all
    weight on one position). Source: S. Qiu, "Global Weighted Average Pooling Bridges
    Pixel-level Localization and Image-level Classification", arXiv:1809.08264 (2018).
    The paper's class-specific module (one weight map per class) is not implemented.

    ``weight`` and ``bias`` start at zero, so a fresh module is exactly average pooling.
    It is :class:`AttentionPool` with the bias and the sigmoid added (``attention_map``
    gives its normalised weights).

    Args:
        channels: number of input channels C (required).
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, C), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> pool = GlobalWeightedAvgPool(3)
        >>> pool(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        data_format: str = "channels_first",
        keepdim: bool = False,
    ):
        super().__init__(channels, data_format=data_format, keepdim=keepdim)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.gwap_pool(x, self.weight, self.bias, mask, **self._kw())

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """``sigmoid(w . x_s + b)``, (N, *S): softmax over positions gives the normalised
        ``exp(sigmoid(.))`` weights (:meth:`attention_map`, where the pool looks)."""
        return torch.sigmoid(super().scores(x) + self.bias.to(x.dtype))
