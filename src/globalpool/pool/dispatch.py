"""Which implementation runs one pooling call: the formula, a CPU kernel, or the formula compiled.

Every operator has one implementation, its plain-torch formula (``formulas``): it is what
runs on every device but the CPU, inside a compiled model and in an exported graph. Two
things can replace it, chosen per call from the input's device and whether a gradient is
needed, never by process-wide state:

- on the CPU, the kernels of ``cpu_kernels`` (blocked in cache, with hand-written
  backwards), which bench_pool.py measured faster than the formula in eager mode
  (its "plain" columns);
- with ``compiled=True`` (a pool module's ``compiled`` attribute, ``compile_pools(model)``,
  ``TrainConfig.compile_pool``), the formula through ``torch.compile``, except where the
  CPU kernel beat inductor's code in bench_pool.py's compiled column: always for
  ``KERNEL_BEATS_COMPILED``, and for calls that need a gradient for
  ``KERNEL_BEATS_COMPILED_WITH_GRAD``. If compiling fails (no C++ compiler, an
  unsupported backend), a warning is issued once and that operator stays eager.

Example:
    >>> import torch
    >>> t = torch.ones(2, 3, 4)  # a flat (N, C, L) view, reduced over dim 2
    >>> implementation("avg", t, needs_grad=False).__module__
    'globalpool.pool.cpu_kernels'
    >>> implementation("avg", t.to("meta"), needs_grad=False).__module__
    'globalpool.pool.formulas'
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from globalpool.pool.cpu_kernels import KERNELS
from globalpool.pool.formulas import FORMULAS, avg, max_
from globalpool.pool.layout import in_graph

__all__ = [
    "KERNEL_BEATS_COMPILED",
    "KERNEL_BEATS_COMPILED_WITH_GRAD",
    "implementation",
    "run_pool",
]

# bench_pool.py, compiled column (2026-11-26 and rerun with this module): GeM's kernel
# f+b 3.7-7x faster than inductor's code, LSE 0.9-1.6x, avg level or faster in every row.
KERNEL_BEATS_COMPILED = frozenset({"avg", "gem", "lse"})
# Their kernel's one-pass backward beats the compiled one (max 1.6-3x, avgmax, catavgmax,
# mixed 0.9-1.8x); without a gradient, inductor's one-pass forward is up to 2.2x faster.
KERNEL_BEATS_COMPILED_WITH_GRAD = frozenset({"max", "avgmax", "catavgmax", "mixed"})


def _avg_and_max_parts(t, dim, mask, count):
    # catavgmax compiled: a cat inside the graph made inductor write the two halves in
    # two loops over x (bench_pool.py: 15.5 ms against 9-10 ms at 256x2048x7x7).
    return avg(t, dim, mask, count), max_(t, dim, mask, count)


_COMPILE_FORMS = {**FORMULAS, "catavgmax": _avg_and_max_parts}
_compiled: dict[str, Callable] = {}
_failed: set[str] = set()


def _compiled_form(name: str) -> Callable:
    fn = _compiled.get(name)
    if fn is None:
        fn = _compiled[name] = torch.compile(_COMPILE_FORMS[name])
    return fn


def _eager(name: str, t: torch.Tensor) -> Callable:
    """The eager implementation: the CPU kernel for a CPU tensor outside a graph, else
    the formula."""
    kernel = KERNELS.get(name) if t.is_cpu and not in_graph() else None
    return kernel or FORMULAS[name]


def implementation(name: str, t: torch.Tensor, *, needs_grad: bool, compiled: bool = False):
    """The function that pools a call of ``name`` on the flat view ``t``.

    Returns the CPU kernel, the formula, or the compiled formula, by the rules of the
    module docstring. ``needs_grad``: whether autograd will differentiate this call.
    """
    kernel_wins = t.is_cpu and (
        name in KERNEL_BEATS_COMPILED or (needs_grad and name in KERNEL_BEATS_COMPILED_WITH_GRAD)
    )
    if compiled and not in_graph() and name not in _failed and not kernel_wins:
        return _compiled_form(name)
    return _eager(name, t)


def run_pool(name: str, *args, compiled: bool = False) -> torch.Tensor:
    """Pool the flat view ``args[0]`` with ``name``'s implementation for this call.

    ``args``: ``(t, dim, mask, count, *hyper-parameters)``, as ``formulas.FORMULAS`` take.
    """
    if not compiled:
        # Straight to the eager implementation, without the gradient scan below: on a
        # small map this call's own Python work is a visible part of the time
        # (bench_pool.py --against timm).
        return _eager(name, args[0])(*args)
    needs_grad = torch.is_grad_enabled() and any(
        isinstance(a, torch.Tensor) and a.requires_grad for a in args
    )
    fn = implementation(name, args[0], needs_grad=needs_grad, compiled=True)
    if fn is FORMULAS.get(name) or fn is KERNELS.get(name):
        return fn(*args)
    try:
        out = fn(*args)
    except Exception as err:  # a compiler problem must not break training
        _failed.add(name)
        warnings.warn(
            f"torch.compile of the {name!r} pool failed ({type(err).__name__}: {err}); "
            "using the eager implementation",
            RuntimeWarning,
            stacklevel=3,
        )
        return implementation(name, args[0], needs_grad=needs_grad)(*args)
    return torch.cat(out, 1) if isinstance(out, tuple) else out
