"""Power-average (Lp) pooling of order p."""

from __future__ import annotations

import torch

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.registry import register_pool

__all__ = ["LpPool"]


@register_pool(
    "lp",
    "power-average of order p (default 2: root mean square)",
    "y_c = (mean_s |x_{c,s}|^p)^(1/p)",
)
class LpPool(GlobalPoolBase):
    """Power-average pooling: ``(mean_s |x| ** p) ** (1 / p)``.

    A mean over positions (unlike ``torch.nn.LPPool2d``'s sum), of |x| so any sign works.

    Args:
        channels: accepted for a uniform constructor, unused.
        p: order, > 0. Default 2.
        learn_p: learn p (stored as ``log_p``), default False.
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, C), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> LpPool(p=2.0)(torch.tensor([[[3.0, -3.0]]]))
        tensor([[3.]])
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        p: float = 2.0,
        learn_p: bool = False,
        data_format: str = "channels_first",
        keepdim: bool = False,
        compiled: bool = False,
    ):
        super().__init__(channels, data_format=data_format, keepdim=keepdim, compiled=compiled)
        self._positive_scalar("p", p, learn_p)

    @property
    def p(self) -> torch.Tensor | float:
        """The current order (a 0-d tensor when learnable)."""
        return self._scalar("p")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.lp_pool(x, mask, p=self.p, **self._kw())
