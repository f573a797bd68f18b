"""Input checks and the flat view every pooling kernel works on.

Every operator reduces a 3-D view of its input over one dim: ``(N, C, L)`` reduced over
dim 2, or ``(N, L, C)`` reduced over dim 1, where ``L`` is the product of the spatial dims.
Whichever of the two is a view of the input's memory is chosen, so channels-first tensors,
channels-first tensors in ``torch.channels_last`` memory format and explicit channels-last
``(N, *S, C)`` tensors are all pooled without a transposing copy.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = [
    "Flat",
    "as_float",
    "flatten_spatial",
    "host_readable",
    "in_graph",
    "normalize_data_format",
    "restore_layout",
]

_FORMATS = {
    "channels_first": "channels_first",
    "ncl": "channels_first",
    "nchw": "channels_first",
    "ncdhw": "channels_first",
    "channels_last": "channels_last",
    "nlc": "channels_last",
    "nhwc": "channels_last",
    "ndhwc": "channels_last",
}

_CANONICAL = ("channels_first", "channels_last")
_FLOATS = frozenset((torch.float16, torch.bfloat16, torch.float32, torch.float64))


def normalize_data_format(data_format: str) -> str:
    """``"channels_first"`` or ``"channels_last"`` for a format name or alias (NCHW, NHWC...)."""
    key = data_format.lower() if isinstance(data_format, str) else None
    if key not in _FORMATS:
        raise ValueError(
            f"data_format must be 'channels_first' or 'channels_last' (or one of "
            f"{', '.join(k.upper() for k in _FORMATS if not k.startswith('channels'))}), "
            f"got {data_format!r}"
        )
    return _FORMATS[key]


class Flat(NamedTuple):
    """A checked input as a 3-D view plus what is needed to pool it and shape the result."""

    t: torch.Tensor  # (N, C, L) when dim == 2, (N, L, C) when dim == 1
    dim: int  # the reduced dim of ``t``
    mask: torch.Tensor | None  # bool, (N, 1, L) or (N, L, 1): broadcasts against ``t``
    count: torch.Tensor | None  # (N, 1) valid positions per sample, in t's dtype
    length: int  # L, the number of spatial positions
    shape: torch.Size  # the input's shape
    data_format: str  # normalised


def _shape_text(data_format: str) -> str:
    return "(N, C, *S)" if data_format == "channels_first" else "(N, *S, C)"


def flatten_spatial(x: torch.Tensor, mask: torch.Tensor | None, data_format: str, op: str) -> Flat:
    """Check ``x`` (and ``mask``) and return the flat view to reduce.

    Raises:
        TypeError: ``x`` is not a floating-point tensor, or ``mask`` is not a bool tensor.
        ValueError: wrong rank, an empty spatial dim, a mask of the wrong shape, or a
            sample whose mask has no valid position.
    """
    # The checks run on every call: each is kept to a few hundred nanoseconds, since on a
    # small map they cost as much as the reduction itself (bench_pool.py --against timm).
    fmt = data_format if data_format in _CANONICAL else normalize_data_format(data_format)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op} pool expects a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise TypeError(
            f"{op} pool expects a floating-point tensor (float16, bfloat16, float32 or "
            f"float64), got {x.dtype}"
        )
    shape = x.shape  # read once: each x.shape is a fresh torch.Size
    ndim = len(shape)
    if not 3 <= ndim <= 5:
        raise ValueError(
            f"{op} pool expects x of shape {_shape_text(fmt)} with 1 to 3 spatial dims "
            f"(a 3-D to 5-D tensor, data_format={fmt!r}), got {ndim}-D shape {tuple(shape)}"
        )
    n = shape[0]
    first = fmt == "channels_first"
    spatial = shape[2:] if first else shape[1:-1]
    if 0 in spatial:
        raise ValueError(
            f"{op} pool needs non-empty spatial dims; got shape {tuple(shape)} "
            f"(spatial dims {tuple(spatial)}, data_format={fmt!r})"
        )
    # A product of the sizes, not spatial.numel(): a traced export records the sizes as
    # graph values (dynamic H, W), which numel() would freeze into a constant.
    length = spatial[0]
    for s in spatial[1:]:
        length = length * s

    # Pick the 3-D view that needs no copy: (N, C, L) or (N, L, C). The permuted view is
    # made only when x is not contiguous (each view costs microseconds on a small map).
    if first:
        c, t, dim = shape[1], x, 2
        if not x.is_contiguous():
            as_last = x.permute(0, *range(2, ndim), 1)
            if as_last.is_contiguous():
                t, dim = as_last, 1
    else:
        c, t, dim = shape[-1], x, 1
        if not x.is_contiguous():
            as_first = x.permute(0, ndim - 1, *range(1, ndim - 1))
            if as_first.is_contiguous():
                t, dim = as_first, 2
    t = t.reshape(n, c, length) if dim == 2 else t.reshape(n, length, c)

    flat_mask = count = None
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise TypeError(f"{op} pool expects mask to be a bool tensor (True = valid), got {got}")
        expected = (n, *spatial)
        if tuple(mask.shape) != expected:
            raise ValueError(
                f"{op} pool expects mask of shape (N, *S) = {expected} for x of shape "
                f"{tuple(x.shape)} (data_format={fmt!r}), got {tuple(mask.shape)}"
            )
        if mask.device != x.device:
            raise ValueError(f"mask is on {mask.device} but x is on {x.device}")
        m2 = mask.reshape(n, length)
        valid = m2.sum(1, keepdim=True)
        if host_readable(valid):
            _check_not_empty(valid, op)
        flat_mask = m2.unsqueeze(1) if dim == 2 else m2.unsqueeze(2)
        count = valid.to(x.dtype)
    return Flat(t, dim, flat_mask, count, length, shape, fmt)


def in_graph() -> bool:
    """Whether the call is being recorded into a graph rather than run eagerly: traced
    (TorchScript, and the TorchScript ONNX exporter, which traces), compiled, or exported
    (``torch.export`` and the dynamo ONNX exporter set the compiling flag)."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def host_readable(t: torch.Tensor) -> bool:
    """Whether ``t`` can be read on the host for a check without a device sync or a graph
    break: a CPU tensor, in eager mode. Checks of other values are skipped (on an
    accelerator an all-False mask row pools to NaN or -inf; exported graphs check masks
    themselves, see ``deploy.export``)."""
    return t.device.type == "cpu" and not in_graph()


def _check_not_empty(valid: torch.Tensor, op: str) -> None:
    empty = (valid == 0).flatten().nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"{op} pool: mask has no valid (True) position for sample(s) {empty[:10]}; "
            "every sample needs at least one valid position"
        )


def restore_layout(y: torch.Tensor, flat: Flat, keepdim: bool) -> torch.Tensor:
    """Shape a pooled ``(N, C')`` result: as is, or with size-1 spatial dims in the input layout."""
    if not keepdim:
        return y
    ones = (1,) * (len(flat.shape) - 2)
    if flat.data_format == "channels_first":
        return y.reshape(y.shape[0], y.shape[1], *ones)
    return y.reshape(y.shape[0], *ones, y.shape[1])


def as_float(value) -> float:
    """A hyper-parameter as a Python float (a learnable one is a 0-d tensor: read, detached)."""
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
