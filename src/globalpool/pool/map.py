"""Multihead attention pooling (MAP): a learned query attends over the positions."""

from __future__ import annotations

import math

import torch
from torch import nn

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.registry import register_pool

__all__ = ["MultiheadAttentionPool"]


@register_pool(
    "map",
    "multihead attention pooling: a learned query attends over the positions (ViT-22B, SigLIP)",
    "a_s = softmax_s((Wq l) . (Wk x_s) / sqrt(d)), y = Wo sum_s a_s (Wv x_s), per head",
)
class MultiheadAttentionPool(GlobalPoolBase):
    """Multihead attention pooling (MAP): one learned query (``latent``) attends over the
    positions with ``num_heads`` heads, as the pooling heads of ViT-22B (Dehghani et al.
    2023) and SigLIP (Zhai et al. 2023), and timm's ``AttentionPoolLatent``.

    The attention alone: the layer norm and MLP that those heads add after it are left to
    the head or network around the pool. No position is projected: the query is carried
    back through the key projection and the values are projected after pooling (the same
    function), so a call costs about N (H L C + C^2) multiply-adds, not N L C^2 as
    ``nn.MultiheadAttention`` or timm's ``AttentionPoolLatent`` compute it. Initialised
    as ``nn.MultiheadAttention`` is (Xavier-uniform projections, zero biases), the query
    from a normal of std C^-1/2.

    Args:
        channels: number of input channels C (required).
        num_heads: attention heads; must divide C (default 1).
        bias: projection biases (default True).
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, C), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> pool = MultiheadAttentionPool(8, num_heads=2)
        >>> pool(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8])
    """

    takes_compiled = False  # matmuls and softmax: no formula of its own to compile

    def __init__(
        self,
        channels: int | None = None,
        *,
        num_heads: int = 1,
        bias: bool = True,
        data_format: str = "channels_first",
        keepdim: bool = False,
    ):
        if channels is None:
            raise ValueError(
                "map pool needs channels=C (the number of input channels) for its query and "
                "projections, e.g. create_pool('map', channels=512)"
            )
        F.head_dim("map pool", channels, num_heads)
        super().__init__(channels, data_format=data_format, keepdim=keepdim)
        self.num_heads = num_heads
        self.latent = nn.Parameter(torch.randn(channels) / math.sqrt(channels))
        self.in_weight = nn.Parameter(torch.empty(3 * channels, channels))
        self.out_weight = nn.Parameter(torch.empty(channels, channels))
        nn.init.xavier_uniform_(self.in_weight)
        nn.init.xavier_uniform_(self.out_weight)
        self.in_bias = nn.Parameter(torch.zeros(3 * channels)) if bias else None
        self.out_bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.map_pool(
            x, self.latent, self.in_weight, self.out_weight, mask, num_heads=self.num_heads,
            in_bias=self.in_bias, out_bias=self.out_bias, **self._kw(),
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_heads={self.num_heads}"
