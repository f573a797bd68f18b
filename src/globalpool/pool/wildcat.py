"""WILDCAT pooling: the mean of each map's highest and lowest regions (Durand et al. 2017)."""

from __future__ import annotations

import torch

from globalpool.pool import functional as F
from globalpool.pool.base import GlobalPoolBase
from globalpool.pool.registry import register_pool

__all__ = ["WildcatPool"]


@register_pool(
    "wildcat",
    "mean of the k_max highest + alpha * mean of the k_min lowest (WILDCAT)",
    "y_c = mean(top_kmax x_c) + alpha mean(bottom_kmin x_c)",
)
class WildcatPool(GlobalPoolBase):
    """WILDCAT pooling (Durand, Mordan, Thome and Cord, CVPR 2017), made for class maps.

    Per map, the mean of the ``k_max`` highest activations (the regions that are evidence
    for the class) plus ``alpha`` times the mean of the ``k_min`` lowest (evidence against
    it). ``k_max = 1, alpha = 0`` is global max pooling. In a class-map head
    (``create_head("classmap", C, K, pool="wildcat")``) it is the paper's spatial pooling;
    its multi-map class pooling is a separate step not done here.

    Args:
        channels: accepted for a uniform constructor, unused.
        k_max: highest positions averaged: an int >= 1, or a fraction in (0, 1) of the
            valid positions (at least one).
        k_min: lowest positions averaged, the same kinds; None: as ``k_max``.
        alpha: weight of the lowest positions' mean, >= 0 (the paper uses 0.7).
        data_format: "channels_first" or "channels_last".
        keepdim: keep the spatial dims as size 1.

    Input shape:
        (N, C, *S) or (N, *S, C) with 1 to 3 spatial dims; optional bool mask (N, *S):
        only valid positions are ranked, and fractions are of the valid positions.

    Output shape:
        (N, C), or with size-1 spatial dims when keepdim.

    Example:
        >>> import torch
        >>> x = torch.tensor([[[1.0, 5.0, 3.0, 2.0]]])
        >>> WildcatPool(k_max=2, alpha=0.5)(x)  # (5 + 3) / 2 + 0.5 * (1 + 2) / 2
        tensor([[4.7500]])
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        k_max: int | float = 1,
        k_min: int | float | None = None,
        alpha: float = 0.7,
        data_format: str = "channels_first",
        keepdim: bool = False,
        compiled: bool = False,
    ):
        super().__init__(channels, data_format=data_format, keepdim=keepdim, compiled=compiled)
        self.k_max, self.k_min, self.alpha = F.wildcat_args(k_max, k_min, alpha)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.wildcat_pool(
            x, mask, k_max=self.k_max, k_min=self.k_min, alpha=self.alpha, **self._kw()
        )

    def _repr_extras(self) -> list[str]:
        return [f"k_max={self.k_max}, k_min={self.k_min}, alpha={self.alpha:g}"]
