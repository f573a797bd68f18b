"""The base class shared by every global pooling module."""

from __future__ import annotations

import math

import torch
from torch import nn

from globalpool.pool._layout import normalize_data_format

__all__ = ["GlobalPoolBase"]


class GlobalPoolBase(nn.Module):
    """Common constructor, ``feat_mult`` and ``out_channels`` of the pooling modules.

    Args:
        channels: number of input channels C; required by pools with per-channel learned
            parameters (attention), accepted and unused by the others.
        data_format: "channels_first" (x is (N, C, *S); also "NCHW", "NCL", "NCDHW") or
            "channels_last" (x is (N, *S, C); also "NHWC", "NLC", "NDHWC").
        keepdim: keep the spatial dims as size 1 in the output.
    """

    feat_mult = 1
    pool_name = "base"

    def __init__(
        self,
        channels: int | None = None,
        *,
        data_format: str = "channels_first",
        keepdim: bool = False,
    ):
        super().__init__()
        if channels is not None and (not isinstance(channels, int) or channels <= 0):
            raise ValueError(f"channels must be a positive int or None, got {channels!r}")
        self.channels = channels
        self.data_format = normalize_data_format(data_format)
        self.keepdim = bool(keepdim)

    def out_channels(self, in_channels: int) -> int:
        """Number of output features for ``in_channels`` input channels."""
        return in_channels * self.feat_mult

    def _positive_scalar(self, name: str, value: float, learnable: bool) -> None:
        """Keep a positive hyper-parameter (GeM's p, LSE's r...): learnable as the
        Parameter ``log_<name>`` (so it stays positive), else as the float ``fixed_<name>``.
        Read it back with :meth:`_scalar`."""
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{self.pool_name} pool expects {name} > 0, got {value!r}")
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
        return {"data_format": self.data_format, "keepdim": self.keepdim}

    def extra_repr(self) -> str:
        parts = [] if self.channels is None else [f"channels={self.channels}"]
        parts += [f"data_format={self.data_format!r}", f"keepdim={self.keepdim}"]
        return ", ".join(parts)
