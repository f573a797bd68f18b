"""The pooling registry: the single source of pool names for heads, models, CLI and docs."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class PoolEntry:
    name: str
    cls: type[nn.Module]
    summary: str  # one line, shown by the CLI and the docs
    formula: str  # plain-text formula of the reduction, for the docs


_POOLS: dict[str, PoolEntry] = {}


def register_pool(name: str, summary: str, formula: str):
    """Class decorator that adds a pooling module to the registry under ``name``."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _POOLS:
            raise ValueError(f"pool {name!r} is already registered")
        _POOLS[name] = PoolEntry(name, cls, summary, formula)
        cls.pool_name = name
        return cls

    return deco


def list_pools() -> list[str]:
    """Names of every registered pool, in registration order."""
    return list(_POOLS)


def pool_entry(name: str) -> PoolEntry:
    """The registry entry of ``name``; ValueError naming the known pools otherwise."""
    if not isinstance(name, str) or name not in _POOLS:
        raise ValueError(f"unknown pool {name!r}; expected one of: {', '.join(_POOLS)}")
    return _POOLS[name]


def create_pool(name: str, channels: int | None = None, **kwargs) -> nn.Module:
    """Build the pooling module registered as ``name``.

    Args:
        name: a name from :func:`list_pools`.
        channels: number of input channels C; needed only by pools with per-channel or
            learned-scoring parameters (``attention``), accepted and ignored by the rest.
        **kwargs: passed to the module (``data_format``, ``keepdim``, ``p``, ``r``...).

    Example:
        >>> import torch
        >>> pool = create_pool("avg")
        >>> pool(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 3])
    """
    return pool_entry(name).cls(channels=channels, **kwargs)
