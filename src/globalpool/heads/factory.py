"""``create_head`` / ``list_heads``: build any head by kind name."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from globalpool.heads.classmap import ClassMapHead
from globalpool.heads.fc import FCHead
from globalpool.heads.pool_linear import PoolLinearHead

__all__ = ["HEADS", "create_head", "list_heads"]

HEADS: dict[str, type[nn.Module]] = {
    "fc": FCHead,
    "classmap": ClassMapHead,
    "pool-linear": PoolLinearHead,
}


def list_heads() -> list[str]:
    """Head kinds: ``["fc", "classmap", "pool-linear"]``."""
    return list(HEADS)


def create_head(
    kind: str,
    in_channels: int,
    num_classes: int,
    *,
    pool: str | None = "avg",
    feature_size: Sequence[int] | None = None,
    **kwargs,
) -> nn.Module:
    """Build a head.

    Args:
        kind: ``"fc"``, ``"classmap"`` or ``"pool-linear"``.
        in_channels: C, channels of the backbone's feature maps.
        num_classes: K.
        pool: pool name for the pooling heads (ignored by ``"fc"``; None means ``"avg"``).
        feature_size: (H, W) of the feature maps; required by ``"fc"`` only.
        **kwargs: head-specific: ``hidden``, ``dropout`` (fc); ``kernel_size``,
            ``pool_kwargs`` (classmap); ``dropout``, ``pool_kwargs`` (pool-linear).

    Input shape: (N, C, H, W). Output shape: (N, K).

    Example:
        >>> import torch
        >>> head = create_head("pool-linear", 32, 10, pool="max")
        >>> head(torch.randn(2, 32, 7, 7)).shape
        torch.Size([2, 10])
    """
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; expected one of: {', '.join(HEADS)}")
    for label, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if kind == "fc":
        if feature_size is None:
            raise ValueError("the 'fc' head needs feature_size=(H, W) of the feature maps")
        return FCHead(in_channels, num_classes, feature_size, **kwargs)
    return HEADS[kind](in_channels, num_classes, pool=pool or "avg", **kwargs)
