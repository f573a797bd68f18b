"""Statistics pooling: the mean and standard deviation of each channel (x-vectors)."""

from __future__ import annotations

import torch

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.registry import register_pool

__all__ = ["StatisticsPool"]


@register_pool(
    "stats",
    "mean and standard deviation per channel, concatenated (x-vectors, Snyder et al. 2018)",
    "y = [mean_s x_s, sqrt(max(mean_s (x_s - mean_s x_s)^2, eps))]",
)
class StatisticsPool(GlobalPoolBase):
    """Statistics pooling (D. Snyder, D. Garcia-Romero, G. Sell, D. Povey, S. Khudanpur,
    "X-vectors: Robust DNN Embeddings for Speaker Recognition", ICASSP 2018): each
    channel's mean and standard deviation over the positions, concatenated. Made for
    variable-length sequences (pass a mask for padded batches); any spatial rank works.

    Args:
        channels: accepted for a uniform constructor, unused.
        eps: floor of the variance (> 0), so a constant channel keeps a finite gradient.
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, 2C): the C means, then the C standard deviations (size-1 spatial dims when
        keepdim).

    Example:
        >>> import torch
        >>> pool = StatisticsPool()
        >>> pool(torch.randn(2, 40, 300)).shape, pool.out_channels(40)
        (torch.Size([2, 80]), 80)
    """

    feat_mult = 2
    takes_compiled = False  # two reductions: no formula of its own to compile

    def __init__(
        self,
        channels: int | None = None,
        *,
        eps: float = 1e-5,
        data_format: str = "channels_first",
        keepdim: bool = False,
    ):
        if not isinstance(eps, (int, float)):  # a module's floor is a number, not a tensor
            raise ValueError(f"stats pool expects eps > 0 and finite, got {eps!r}")
        F.check_positive(eps, "eps", "stats")
        super().__init__(channels, data_format=data_format, keepdim=keepdim)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.stats_pool(x, mask, eps=self.eps, **self._kw())

    def _repr_extras(self) -> list[str]:
        return [f"eps={self.eps:g}"]
