"""SimPool: attention pooling whose query is the global average (Psomas et al. 2023)."""

from __future__ import annotations

import math

import torch
from torch import nn

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.registry import register_pool

__all__ = ["SimPool"]


@register_pool(
    "simpool",
    "attention with GAP as the query over layer-normed features (Psomas et al. 2023)",
    "z_s = LN(x_s), a_s = softmax_s((Wq mean_s x_s) . (Wk z_s) / sqrt(d)), y = sum_s a_s z_s",
)
class SimPool(GlobalPoolBase):
    """SimPool ("Keep It SimPool", Psomas et al., ICCV 2023): one cross-attention step
    whose query is the global average of the features, over their layer-normed values.

    Per head (C / num_heads channels): the query is ``Wq`` times the average of the
    features, each position's key ``Wk`` times its layer-normed features, the values the
    layer-normed features themselves; the output is their attention-weighted mean (or,
    with ``gamma``, generalised mean). The projections are initialised as ``nn.Linear``'s
    (no bias), the LayerNorm as identity. The keys are never formed: the query is carried
    back through ``Wk`` instead (the same scores), so a call costs about N (H L C + C^2)
    multiply-adds, not the N L C^2 of projecting every position.

    Args:
        channels: number of input channels C (required).
        num_heads: attention heads; must divide C (default 1, the paper's for CNNs).
        gamma: None, or > 0 for the generalised-mean form of the values.
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, C), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> pool = SimPool(8, num_heads=2)
        >>> pool(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8])
    """

    takes_compiled = False  # matmuls, layer norm and softmax: no formula of its own

    def __init__(
        self,
        channels: int | None = None,
        *,
        num_heads: int = 1,
        gamma: float | None = None,
        data_format: str = "channels_first",
        keepdim: bool = False,
    ):
        if channels is None:
            raise ValueError(
                "simpool needs channels=C (the number of input channels) for its query and "
                "key projections, e.g. create_pool('simpool', channels=512)"
            )
        F.head_dim("simpool", channels, num_heads)
        if gamma is not None and not (
            isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma > 0
        ):
            raise ValueError(f"simpool expects gamma > 0 or None, got {gamma!r}")
        super().__init__(channels, data_format=data_format, keepdim=keepdim)
        self.num_heads = num_heads
        self.gamma = None if gamma is None else float(gamma)
        self.query_weight = nn.Parameter(torch.empty(channels, channels))
        self.key_weight = nn.Parameter(torch.empty(channels, channels))
        self.norm_weight = nn.Parameter(torch.ones(channels))
        self.norm_bias = nn.Parameter(torch.zeros(channels))
        for weight in (self.query_weight, self.key_weight):  # as nn.Linear initialises
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.simpool(
            x, self.query_weight, self.key_weight, mask, num_heads=self.num_heads,
            norm_weight=self.norm_weight, norm_bias=self.norm_bias, gamma=self.gamma,
            **self._kw(),
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_heads={self.num_heads}, gamma={self.gamma}"
