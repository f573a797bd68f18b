"""The ResNet-style head: global pool, optional dropout, one Linear."""

from __future__ import annotations

import torch
from torch import nn

from globalpool.heads.base import Head
from globalpool.pool import create_pool

__all__ = ["PoolLinearHead"]


class PoolLinearHead(Head):
    """Global pool over the spatial dims, dropout, then ``Linear(C * feat_mult, K)``,
    optionally times a fixed ``logit_scale``.

    Args:
        in_channels: C, channels of the feature maps.
        num_classes: K, number of outputs.
        pool: a pool name from ``globalpool.pool.list_pools()``.
        dropout: dropout probability before the Linear (0 disables it).
        pool_kwargs: extra arguments for the pool (``p``, ``r``...).
        bias: give the Linear a bias.
        logit_scale: a constant the logits are multiplied by. Below 1 it starts the
            logits near zero and slows the Linear's effect on them (by ``logit_scale**2``
            per SGD step); airbench uses 1/9 with global max pooling and no bias.

    Input shape: (N, C, H, W). Output shape: (N, K).

    Example:
        >>> import torch
        >>> head = PoolLinearHead(64, 10, pool="max")
        >>> head(torch.randn(2, 64, 4, 4)).shape
        torch.Size([2, 10])
    """

    fixed_size = False
    feature_size = None

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        pool: str = "avg",
        dropout: float = 0.0,
        pool_kwargs: dict | None = None,
        bias: bool = True,
        logit_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if (
            isinstance(logit_scale, bool)
            or not isinstance(logit_scale, (int, float))
            or not (0.0 < logit_scale < float("inf"))
        ):
            raise ValueError(f"logit_scale must be a finite number > 0, got {logit_scale!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.pool = create_pool(pool, channels=in_channels, **(pool_kwargs or {}))
        self.pool_name = pool
        self.num_features = self.pool.out_channels(in_channels)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.num_features, num_classes, bias=bool(bias))
        self.logit_scale = float(logit_scale)

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features, before dropout: (N, C, H, W) -> (N, C * feat_mult)."""
        return self.pool(x)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from pooled features: dropout, the Linear, ``logit_scale``.
        (N, C * feat_mult) -> (N, K). The masked export pools with a mask, then calls this."""
        logits = self.fc(self.drop(pooled))
        return logits if self.logit_scale == 1.0 else logits * self.logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(x))

    def extra_repr(self) -> str:
        scale = f", logit_scale={self.logit_scale:g}" if self.logit_scale != 1.0 else ""
        return f"pool={self.pool_name!r}{scale}"
