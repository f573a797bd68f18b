"""The Network-in-Network head: a convolution to one map per class, then a global pool."""

from __future__ import annotations

import torch
from torch import nn

from globalpool.heads.base import Head
from globalpool.pool import create_pool

__all__ = ["ClassMapHead"]


class ClassMapHead(Head):
    """Convolution to exactly ``num_classes`` maps, then a global pool: the pooled maps are
    the logits. There is no Linear layer (Lin et al. 2013, "Network In Network").

    Pools with ``feat_mult > 1`` (``catavgmax`` concatenates the average and the max, so
    pooling K maps gives 2K values) are reduced to K logits by summing the ``feat_mult``
    parts class by class: for ``catavgmax`` logit_k = mean(map_k) + max(map_k). This keeps
    one logit per class map, so CAM stays exact, and makes every registered pool usable.
    (It assumes the pool lays its output out as feat_mult blocks of C, as the pool contract's
    concatenation does; the tests check it against plain torch.)

    Args:
        in_channels: C, channels of the feature maps.
        num_classes: K, number of class maps and of logits.
        pool: a pool name from ``globalpool.pool.list_pools()``.
        kernel_size: 1 or 3 (3 uses padding 1, so the maps keep the feature size).
        pool_kwargs: extra arguments for the pool (``p``, ``r``...).

    Input shape: (N, C, H, W). Output shape: (N, K).

    Example:
        >>> import torch
        >>> head = ClassMapHead(192, 10, pool="avg")
        >>> logits, maps = head.forward_with_maps(torch.randn(2, 192, 8, 8))
        >>> logits.shape, maps.shape
        (torch.Size([2, 10]), torch.Size([2, 10, 8, 8]))
    """

    fixed_size = False
    feature_size = None

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        pool: str = "avg",
        kernel_size: int = 1,
        pool_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if kernel_size not in (1, 3):
            raise ValueError(f"ClassMapHead kernel_size must be 1 or 3, got {kernel_size!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size, padding=kernel_size // 2)
        self.pool = create_pool(pool, channels=num_classes, **(pool_kwargs or {}))
        if not getattr(self.pool, "keeps_channels", True):
            raise ValueError(
                f"a class-map head pools each class map to its logit, but the {pool!r} pool "
                f"gives {self.pool.out_channels(num_classes)} values for {num_classes} maps "
                "(it mixes channels); use it in a pool-linear head"
            )
        self.pool_name = pool
        self.feat_mult = int(getattr(self.pool, "feat_mult", 1))
        self.num_features = num_classes  # pre_logits: the pooled class maps

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> class maps (N, K, H, W)."""
        return self.conv(x)

    def _pool_maps(self, maps: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(maps)
        if self.feat_mult > 1:  # (N, m*K) laid out as m blocks of K -> sum the blocks
            pooled = pooled.reshape(pooled.shape[0], self.feat_mult, self.num_classes).sum(1)
        return pooled

    def forward_with_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the class maps they were pooled from, in one pass:
        (N, C, H, W) -> ((N, K), (N, K, H, W))."""
        maps = self.class_maps(x)
        return self._pool_maps(maps), maps

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled class maps, (N, K). No Linear follows them, so they are the logits."""
        return self._pool_maps(self.class_maps(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool_maps(self.class_maps(x))

    def extra_repr(self) -> str:
        return f"pool={self.pool_name!r}"
