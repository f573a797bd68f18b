"""Attention pooling: learned spatial weights from a 1x1 convolution."""

from __future__ import annotations

import torch
from torch import nn

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.registry import register_pool

__all__ = ["AttentionPool"]


@register_pool(
    "attention",
    "learned spatial weights: 1x1 conv score, softmax over positions",
    "a_s = softmax_s(w . x_s), y_c = sum_s a_s x_{c,s}",
)
class AttentionPool(GlobalPoolBase):
    """Attention pooling: score each position with a 1x1 conv, softmax, weighted sum.

    The scoring weights ``weight`` (C,) start at zero, so a fresh module is exactly
    average pooling and learns where to look. (A bias would cancel in the softmax.)

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
        >>> pool = AttentionPool(3)
        >>> pool(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 3])
    """

    takes_compiled = False  # bmm and softmax: no formula of its own to compile

    def __init__(
        self,
        channels: int | None = None,
        *,
        data_format: str = "channels_first",
        keepdim: bool = False,
    ):
        if channels is None:  # pool_name: this class's or a subclass's (gwap)
            raise ValueError(
                f"{self.pool_name} pool needs channels=C (the number of input channels) for "
                f"its 1x1 scoring conv, e.g. create_pool('{self.pool_name}', channels=512)"
            )
        super().__init__(channels, data_format=data_format, keepdim=keepdim)
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.attention_pool(x, self.weight, mask, **self._kw())

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """The score of each position before the softmax over positions, (N, *S)."""
        equation = "nc...,c->n..." if self.data_format == "channels_first" else "n...c,c->n..."
        return torch.einsum(equation, x, self.weight.to(x.dtype))

    def attention_map(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The softmax weights, (N, *S): where the pool looks."""
        score = self.scores(x)
        if mask is not None:
            score = score.masked_fill(~mask, float("-inf"))
        return torch.softmax(score.flatten(1).float(), 1).reshape(score.shape)
