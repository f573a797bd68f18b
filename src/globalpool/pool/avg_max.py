"""Global average, max, avg+max and concatenated avg|max pooling modules."""

from __future__ import annotations

import torch

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.registry import register_pool

__all__ = ["GlobalAvgMaxPool", "GlobalAvgPool", "GlobalCatAvgMaxPool", "GlobalMaxPool"]


@register_pool("avg", "global average pooling (GAP)", "y_c = mean_s x_{c,s}")
class GlobalAvgPool(GlobalPoolBase):
    """Global average pooling: the mean of every channel over all (valid) positions.

    Args:
        channels: accepted for a uniform constructor, unused.
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, C), or (N, C, 1, ...) / (N, 1, ..., C) with keepdim.

    Example:
        >>> import torch
        >>> GlobalAvgPool()(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 3])
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.avg_pool(x, mask, **self._kw())


@register_pool("max", "global max pooling (GMP)", "y_c = max_s x_{c,s}")
class GlobalMaxPool(GlobalPoolBase):
    """Global max pooling: the largest value of every channel over all (valid) positions.

    On ties the gradient goes to the first maximal position in row-major spatial order.

    Args:
        channels: accepted for a uniform constructor, unused.
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, C), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> GlobalMaxPool()(torch.arange(8.0).reshape(1, 2, 4))
        tensor([[3., 7.]])
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.max_pool(x, mask, **self._kw())


@register_pool(
    "avgmax", "mean of average and max pooling", "y_c = (mean_s x_{c,s} + max_s x_{c,s}) / 2"
)
class GlobalAvgMaxPool(GlobalPoolBase):
    """The mean of global average and global max pooling.

    Args:
        channels: accepted for a uniform constructor, unused.
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, C), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> GlobalAvgMaxPool()(torch.tensor([[[0.0, 2.0]]]))
        tensor([[1.5000]])
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.avgmax_pool(x, mask, **self._kw())


@register_pool(
    "catavgmax",
    "average and max pooling concatenated (2C features)",
    "y = [mean_s x_{c,s} ; max_s x_{c,s}]",
)
class GlobalCatAvgMaxPool(GlobalPoolBase):
    """Global average and global max pooling, concatenated along channels.

    Args:
        channels: accepted for a uniform constructor, unused.
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S).

    Output shape:
        (N, 2C): the C averages then the C maxima (size-1 spatial dims when keepdim).

    Example:
        >>> import torch
        >>> pool = GlobalCatAvgMaxPool()
        >>> pool(torch.ones(2, 3, 4, 4)).shape, pool.out_channels(3)
        (torch.Size([2, 6]), 6)
    """

    feat_mult = 2

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.catavgmax_pool(x, mask, **self._kw())
