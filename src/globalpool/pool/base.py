"""The base class shared by every global pooling module, and ``compile_pools``."""

from __future__ import annotations

import math

import torch
from torch import nn

from globalpool.pool.layout import normalize_data_format

__all__ = ["GlobalPoolBase", "compile_pools"]


class GlobalPoolBase(nn.Module):
    """Common constructor, ``feat_mult`` and ``out_channels`` of the pooling modules.

    Args:
        channels: number of input channels C; required by pools with per-channel learned
            parameters (attention), accepted and unused by the others.
        data_format: "channels_first" (x is (N, C, *S); also "NCHW", "NCL", "NCDHW") or
            "channels_last" (x is (N, *S, C); also "NHWC", "NLC", "NDHWC").
        keepdim: keep the spatial dims as size 1 in the output.
        compiled: run the operator's formula through ``torch.compile`` where that was
            measured faster for the call (``globalpool.pool.dispatch``); also set later
            by :func:`compile_pools`.
    """

    feat_mult = 1
    # the output is feat_mult blocks of one value per channel (a class-map head needs it)
    keeps_channels = True
    pool_name = "base"
    takes_compiled = True  # the functional form has a compiled path (attention: none)

    def __init__(
        self,
        channels: int | None = None,
        *,
        data_format: str = "channels_first",
        keepdim: bool = False,
        compiled: bool = False,
    ):
        super().__init__()
        if channels is not None and (not isinstance(channels, int) or channels <= 0):
            raise ValueError(f"channels must be a positive int or None, got {channels!r}")
        self.channels = channels
        self.data_format = normalize_data_format(data_format)
        self.keepdim = bool(keepdim)
        self.compiled = bool(compiled)
        self._scalar_names: list[str] = []

    def out_channels(self, in_channels: int) -> int:
        """Number of output features for ``in_channels`` input channels."""
        return in_channels * self.feat_mult

    def _positive_scalar(self, name: str, value: float, learnable: bool) -> None:
        """Keep a positive hyper-parameter (GeM's p, LSE's r...): learnable as the
        Parameter ``log_<name>`` (so it stays positive), else as the float ``fixed_<name>``.
        Read it back with :meth:`_scalar`."""
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{self.pool_name} pool expects {name} > 0, got {value!r}")
        self._scalar_names.append(name)
        setattr(self, f"learn_{name}", bool(learnable))
        if learnable:
            setattr(self, f"log_{name}", nn.Parameter(torch.tensor(math.log(value))))
        else:
            setattr(self, f"fixed_{name}", float(value))

    def _scalar(self, name: str) -> torch.Tensor | float:
        """The current value of a :meth:`_positive_scalar` (a 0-d tensor when learnable)."""
        if getattr(self, f"learn_{name}"):
            return getattr(self, f"log_{name}").exp()
        return getattr(self, f"fixed_{name}")

    def _kw(self) -> dict:
        kw = {"data_format": self.data_format, "keepdim": self.keepdim}
        if self.takes_compiled:
            kw["compiled"] = self.compiled
        return kw

    def _repr_extras(self) -> list[str]:
        """Settings of a subclass shown after its scalars (GeM's eps)."""
        return []

    def extra_repr(self) -> str:
        parts = []
        for name in self._scalar_names:
            value = self._scalar(name)
            value = float(value.detach()) if isinstance(value, torch.Tensor) else value
            parts.append(f"{name}={value:.4g}, learn_{name}={getattr(self, f'learn_{name}')}")
        parts += self._repr_extras()
        parts += [] if self.channels is None else [f"channels={self.channels}"]
        parts += [f"data_format={self.data_format!r}", f"keepdim={self.keepdim}"]
        parts += ["compiled=True"] if self.compiled else []
        return ", ".join(parts)


def compile_pools(model: nn.Module, enabled: bool = True) -> int:
    """Set ``compiled`` on every pooling module of ``model``; returns how many there are.

    Only the pools' formulas go through ``torch.compile`` (where measured faster, see
    ``globalpool.pool.dispatch``); the rest of the model stays eager. To compile the
    whole model, ``torch.compile(model)`` instead: the pools then join its graph.

    Example:
        >>> from torch import nn
        >>> from globalpool.pool import create_pool
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), create_pool("max"))
        >>> compile_pools(model), model[1].compiled
        (1, True)
    """
    pools = [m for m in model.modules() if isinstance(m, GlobalPoolBase)]
    for pool in pools:
        pool.compiled = bool(enabled)
    return len(pools)
