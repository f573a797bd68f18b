"""Placeholder until the operators land: GAP and GMP only (the pool helper replaces this)."""

from __future__ import annotations

import torch
from torch import nn

from globalpool.pool.registry import register_pool

__all__ = ["GlobalAvgPool", "GlobalMaxPool"]


class _Base(nn.Module):
    feat_mult = 1

    def __init__(self, channels=None, data_format="channels_first", keepdim=False):
        super().__init__()
        self.data_format, self.keepdim = data_format, keepdim

    def out_channels(self, in_channels: int) -> int:
        return in_channels * self.feat_mult


@register_pool("avg", "global average pooling (GAP)", "y_c = mean_s x_{c,s}")
class GlobalAvgPool(_Base):
    def forward(self, x: torch.Tensor, mask=None) -> torch.Tensor:
        return x.mean(tuple(range(2, x.ndim)), keepdim=self.keepdim)


@register_pool("max", "global max pooling (GMP)", "y_c = max_s x_{c,s}")
class GlobalMaxPool(_Base):
    def forward(self, x: torch.Tensor, mask=None) -> torch.Tensor:
        return x.amax(tuple(range(2, x.ndim)), keepdim=self.keepdim)
