"""Optional torch.compile path for the pooling operators, with an eager fallback.

Off by default. ``set_compile(True)`` (for example from ``TrainConfig.compile_pool``)
routes the functional pools through a ``torch.compile``-d composite of the same formula,
so inductor can fuse their passes (catavgmax reads x once; Lp forward and backward become
one or two loops each), except where the eager kernels measured faster: always for
``EAGER_FASTER``, and for calls that need a gradient for ``EAGER_FASTER_WITH_GRAD``. If
compilation fails for an operator (no C++ compiler, an unsupported backend), a warning is
issued once and that operator stays eager. Inside a model compiled as a whole, every pool
runs its composite, so it joins the model's graph.

Example:
    >>> import globalpool.pool as gp
    >>> gp.set_compile(False)  # the default
    >>> gp.compile_enabled()
    False
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch

__all__ = ["compile_enabled", "composite", "run_pool", "set_compile"]

_state = {"enabled": False}
_compiled: dict[str, Callable] = {}
_failed: set[str] = set()


def set_compile(enabled: bool = True) -> None:
    """Turn the torch.compile path of every pool on or off (process-wide)."""
    _state["enabled"] = bool(enabled)


def compile_enabled() -> bool:
    """Whether pools currently run through torch.compile."""
    return _state["enabled"]


# Composite (plain autograd) forms of each operator on a flat view; inductor fuses them.
# They follow the eager kernels' maths and tie rule (max with indices keeps the first
# maximal position), so eager and compiled results agree.


def _c_avg(t, dim, mask, count):
    if mask is None:
        return t.mean(dim)
    return torch.where(mask, t, 0.0).sum(dim) / count


def _max_values(t, dim):
    return t.max(dim).values


class _ArgmaxGradMax(torch.autograd.Function):
    """amax over ``dim`` whose backward sends the gradient to ``argmax`` (the first maximum).

    The compiled form of max: plain ops that dynamo traces, with a backward of one read
    (argmax) and one write pass, where ``max(dim).values`` saves indices in the forward
    and inductor scatters them into a zeroed gradient (compiled forward+backward at
    256x2048x7x7 in NCHW memory: 69 ms against 92 ms). Not used for export (torch.jit
    cannot save it).
    """

    @staticmethod
    def forward(ctx, t, dim):
        ctx.save_for_backward(t)
        ctx.dim = dim
        return t.amax(dim)

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        dim = ctx.dim
        first = t.argmax(dim, keepdim=True)
        shape = [1] * t.ndim
        shape[dim] = t.shape[dim]
        position = torch.arange(t.shape[dim], device=t.device).view(shape)
        return torch.where(position == first, grad.unsqueeze(dim), 0.0), None


def _avg_max_family(max_of: Callable, *, cat: bool = True) -> dict[str, Callable]:
    """avg, max, avgmax, catavgmax and mixed composites taking the max with ``max_of``.

    With ``cat=False`` catavgmax returns its (avg, max) parts, to be concatenated outside
    a compiled graph: a cat inside it makes inductor write the halves in two loops over x
    (two reads instead of one).
    """

    def c_max(t, dim, mask, count):
        if mask is not None:
            t = t.masked_fill(~mask, -math.inf)
        return max_of(t, dim)

    def c_avgmax(t, dim, mask, count):
        return 0.5 * (_c_avg(t, dim, mask, count) + c_max(t, dim, mask, count))

    def c_catavgmax(t, dim, mask, count):
        parts = _c_avg(t, dim, mask, count), c_max(t, dim, mask, count)
        return torch.cat(parts, 1) if cat else parts

    def c_mixed(t, dim, mask, count, alpha):
        top, avg = c_max(t, dim, mask, count), _c_avg(t, dim, mask, count)
        # where: +inf in both (an +inf input) stays +inf, not 0 * inf = NaN at alpha 0 or 1
        return torch.where(
            (top == math.inf) & (avg == math.inf), top, alpha * top + (1 - alpha) * avg
        )

    return {
        "avg": _c_avg, "max": c_max, "avgmax": c_avgmax, "catavgmax": c_catavgmax,
        "mixed": c_mixed,
    }  # fmt: skip


def _c_power(t, dim, mask, count, p, eps, use_abs):
    tw = t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
    a = tw.abs() if use_abs else tw.clamp_min(eps)
    if mask is not None:
        a = torch.where(mask, a, 0.0)
    top = a.amax(dim, keepdim=True).clamp_min(1e-30).detach()
    s = (a / top).pow(p)
    s = s.mean(dim) if mask is None else s.sum(dim) / count
    y = top.squeeze(dim) * s.pow(1.0 / p)
    top = top.squeeze(dim)
    return torch.where(top == math.inf, top, y).to(t.dtype)


def _c_lse(t, dim, mask, count, r):
    tw = t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
    if mask is not None:
        tw = tw.masked_fill(~mask, -math.inf)
    # Shifted by the max of x, not of r * x (which overflows for r * x > 3.4e38).
    top = tw.amax(dim, keepdim=True).detach()
    # mean, not logsumexp - log(n): n then stays a traced shape when exporting.
    s = ((tw - top) * r).exp()
    s = s.mean(dim) if count is None else s.sum(dim) / count
    return (top.squeeze(dim) + s.log() / r).to(t.dtype)


# The export forms (plain ops only, as torch.jit and ONNX need them).
composite: dict[str, Callable] = {
    **_avg_max_family(_max_values),
    "gem": _c_power,
    "lp": _c_power,
    "lse": _c_lse,
}
# What set_compile(True) compiles: the same maths, with the argmax-backward max, and
# catavgmax's parts concatenated outside the graph (run_pool).
_to_compile: dict[str, Callable] = {
    **composite,
    **_avg_max_family(_ArgmaxGradMax.apply, cat=False),
}

# Operators whose eager kernels (pool/_kernels.py: blocked, with hand-written backwards;
# BLAS sums for avg) beat inductor's code for their composite on the CPU (bench_pool.py:
# GeM forward+backward 3.7-7x faster eager, LSE 0.9-1.6x; avg level or faster in every
# row), so set_compile(True) leaves them eager; export still uses their composites.
EAGER_FASTER = frozenset({"avg", "gem", "lse"})
# Operators whose eager forward+backward (one blocked backward pass) beats the compiled
# one (bench_pool.py, compiled time / eager time: max 1.6-3x, avgmax, catavgmax and mixed
# 0.9-1.8x), so set_compile(True) compiles only their calls that need no gradient
# (evaluation, inference), where inductor's one-pass forward is up to 2.2x faster at 7x7.
EAGER_FASTER_WITH_GRAD = frozenset({"max", "avgmax", "catavgmax", "mixed"})


def _joined(out):
    """A compiled form's result: catavgmax's (avg, max) parts concatenated, else as is."""
    return torch.cat(out, 1) if isinstance(out, tuple) else out


def run_pool(name: str, eager: Callable, *args):
    """Call the compiled composite ``name`` when compiling is on, else ``eager``, same args."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        # Export (ONNX / TorchScript tracing): plain ops only. The eager kernels are custom
        # autograd Functions (not serialisable by torch.jit) with data-dependent branches.
        return composite[name](*args)
    if torch.compiler.is_compiling():
        # Inside a compiled model (TrainConfig.compile): plain ops that join the model's
        # graph; the eager kernels' data-dependent checks would break it into pieces.
        return _joined(_to_compile[name](*args))
    if not _state["enabled"] or name in _failed or name in EAGER_FASTER:
        return eager(*args)
    if name in EAGER_FASTER_WITH_GRAD and torch.is_grad_enabled() and args[0].requires_grad:
        return eager(*args)
    fn = _compiled.get(name)
    if fn is None:
        fn = _compiled[name] = torch.compile(_to_compile[name])
    try:
        return _joined(fn(*args))
    except Exception as err:  # compilation problems must not break training
        _failed.add(name)
        warnings.warn(
            f"torch.compile of the {name!r} pool failed ({type(err).__name__}: {err}); "
            "using the eager kernel",
            RuntimeWarning,
            stacklevel=3,
        )
        return eager(*args)
