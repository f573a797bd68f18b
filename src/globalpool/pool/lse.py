"""Log-sum-exp pooling with a fixed or learnable sharpness r."""

from __future__ import annotations

import torch

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.registry import register_pool

__all__ = ["LSEPool"]


@register_pool(
    "lse",
    "log-sum-exp, sharpness r between avg (r->0) and max (r->inf)",
    "y_c = (1/r) log(mean_s exp(r x_{c,s}))",
)
class LSEPool(GlobalPoolBase):
    """Log-sum-exp pooling: ``(1 / r) * log(mean_s exp(r * x))``.

    Normalised by the number of positions, so it lies between average (r -> 0) and max
    (r -> inf) pooling. Computed with a max shift: finite for inputs of any magnitude.
    A learnable r is stored as ``log_r`` (r stays positive) and read through ``r``.

    Args:
        channels: accepted for a uniform constructor, unused.
        r: initial (or fixed) sharpness, > 0. Default 10.
        learn_r: learn r (default False).
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, C), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> x = torch.tensor([[[0.0, 1.0]]])
        >>> y = LSEPool(r=5.0)(x)
        >>> bool(x.mean() <= y <= x.amax())
        True
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        r: float = 10.0,
        learn_r: bool = False,
        data_format: str = "channels_first",
        keepdim: bool = False,
        compiled: bool = False,
    ):
        super().__init__(channels, data_format=data_format, keepdim=keepdim, compiled=compiled)
        self._positive_scalar("r", r, learn_r)

    @property
    def r(self) -> torch.Tensor | float:
        """The current sharpness (a 0-d tensor when learnable)."""
        return self._scalar("r")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.lse_pool(x, mask, r=self.r, **self._kw())
