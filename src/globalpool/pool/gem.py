"""Generalized-mean (GeM) pooling with a learnable or fixed power p."""

from __future__ import annotations

import torch

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.registry import register_pool

__all__ = ["GeMPool"]


@register_pool(
    "gem",
    "generalized mean, learnable power p (default 3)",
    "y_c = (mean_s max(x_{c,s}, eps)^p)^(1/p)",
)
class GeMPool(GlobalPoolBase):
    """Generalized-mean pooling: ``(mean_s clamp(x, eps) ** p) ** (1 / p)``.

    p = 1 averages the positive part, large p approaches max pooling. A learnable p is
    stored as ``log_p`` (so p stays positive and finite under any update) and read through
    the ``p`` property. The reduction runs in float32 with an overflow-safe rescaling, so
    bfloat16/float16 autocast training keeps p and the loss finite.

    Args:
        channels: accepted for a uniform constructor, unused.
        p: initial (or fixed) power, > 0. Default 3.
        learn_p: learn p (default True) or keep it fixed.
        eps: lower clamp of the input, > 0.
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, C), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> pool = GeMPool(p=3.0)
        >>> pool(torch.full((2, 3, 4, 4), 2.0))
        tensor([[2., 2., 2.],
                [2., 2., 2.]], grad_fn=<_PowerMeanBackward>)
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        p: float = 3.0,
        learn_p: bool = True,
        eps: float = 1e-6,
        data_format: str = "channels_first",
        keepdim: bool = False,
        compiled: bool = False,
    ):
        super().__init__(channels, data_format=data_format, keepdim=keepdim, compiled=compiled)
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"gem pool expects eps > 0, got {eps!r}")
        self.eps = float(eps)
        self._positive_scalar("p", p, learn_p)

    @property
    def p(self) -> torch.Tensor | float:
        """The current power (a 0-d tensor when learnable)."""
        return self._scalar("p")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.gem_pool(x, mask, p=self.p, eps=self.eps, **self._kw())

    def _repr_extras(self) -> list[str]:
        return [f"eps={self.eps}"]
