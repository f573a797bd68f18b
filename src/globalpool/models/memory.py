"""How much memory an image needs through a model, estimated before any of it exists.

A size typed by mistake (``--size 60000``) asks the allocator for tens of gigabytes, and
torch answers with a traceback from deep inside a resize or a convolution.
:func:`activation_bytes` records the output of every layer in one real pass at a small
size with the same aspect (at most 128 x 128 pixels, one thread: milliseconds) and scales
the spatial ones by the ratio of pixels; the meta device (shapes only) would be exact,
but its first batch-norm and convolution cost 1.2 s of imports, so it is only the
fallback where the small pass cannot run. :func:`check_fits_memory` refuses what cannot
fit with one line. The estimate counts layer outputs, not convolution workspaces or the
allocator's slack: it guards against sizes off by orders of magnitude, not a tight budget.

Example:
    >>> from globalpool.models import create_model
    >>> model = create_model("fastnet", 10)
    >>> activation_bytes(model, 3, (64, 64)) > activation_bytes(model, 3, (32, 32))
    True
"""

from __future__ import annotations

import math
import weakref

import torch
from torch import nn

from globalpool.machine import memory_available
from globalpool.models.shape import probe_mode

__all__ = ["InsufficientMemoryError", "activation_bytes", "check_fits_memory", "format_bytes"]

# module -> {(in_chans, size, batch, grad): bytes}: predict asks once per image size
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_REFERENCE_PIXELS = 128 * 128


class InsufficientMemoryError(ValueError):
    """A size whose estimated memory exceeds what the device has left (a user mistake)."""


def format_bytes(n: int | float) -> str:
    """``1536`` -> ``'1.5 KiB'``; binary units, as ``free -h``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _dtype(module: nn.Module) -> torch.dtype:
    param = next(module.parameters(), None)
    return param.dtype if param is not None and param.is_floating_point() else torch.float32


def _walk(module: nn.Module, x: torch.Tensor) -> list[torch.Size] | None:
    """Shapes of every leaf module's tensor outputs, in call order (eval mode, no grad);
    None where the module cannot run on ``x``."""
    shapes: list[torch.Size] = []

    def record(_module, _inputs, out) -> None:
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                shapes.append(o.shape)

    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with probe_mode(module):
            if x.device.type == "meta":
                state = {
                    k: torch.empty_like(v, device="meta") for k, v in module.state_dict().items()
                }
                torch.func.functional_call(module, state, (x,), strict=False)
            else:
                module(x)
    except Exception:  # too small for the module, or a module that reads values on meta
        return None
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _reference_size(h: int, w: int) -> tuple[int, int]:
    if h * w <= _REFERENCE_PIXELS:
        return h, w
    scale = math.sqrt(_REFERENCE_PIXELS / (h * w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def activation_bytes(
    module: nn.Module, in_chans: int, size: tuple[int, int], *, batch: int = 1, grad=False
) -> int | None:
    """Estimated bytes of a forward pass of ``batch`` images of ``size`` through ``module``.

    Args:
        module: a Classifier or a backbone; its parameters' dtype sets the element size.
        in_chans: channels of the input.
        size: (H, W) of the input.
        batch: images per pass.
        grad: False: inference, where a layer's input is freed after its output is made
            (the peak of the input plus the largest pair of consecutive outputs). True: a
            backward pass follows, so every layer's output is kept (their sum), which is
            about what autograd saves.

    Returns:
        bytes, or None for a module that runs neither at the reference size nor on meta.
    """
    h, w = (int(s) for s in size)
    key = (int(in_chans), (h, w), int(batch), bool(grad))
    known = _cache.setdefault(module, {})
    if key in known:
        return known[key]
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = _dtype(module)
    ref = _reference_size(h, w)
    shapes = _walk(module, torch.zeros(1, in_chans, *ref, device=device, dtype=dtype))
    if shapes is None and ref != (h, w):
        ref = (h, w)
        shapes = _walk(module, torch.empty(1, in_chans, h, w, device="meta", dtype=dtype))
    if shapes is None:
        known[key] = None
        return None
    grow = h * w / (ref[0] * ref[1])
    # maps (N, C, h, w) and token sequences (N, L, C) grow with the pixels; vectors do not
    outputs = [
        math.prod(s[1:]) * dtype.itemsize * batch * (grow if len(s) >= 3 else 1) for s in shapes
    ]
    input_bytes = batch * in_chans * h * w * dtype.itemsize
    if grad:
        result = input_bytes + sum(outputs)
    else:
        result, previous = input_bytes, input_bytes
        for current in outputs:
            result = max(result, previous + current)
            previous = current
    known[key] = int(result)
    return known[key]


def check_fits_memory(
    module: nn.Module,
    in_chans: int,
    size: tuple[int, int],
    *,
    batch: int = 1,
    grad: bool = False,
    device="cpu",
    hint: str = "pass a smaller size",
) -> None:
    """Refuse, before allocating, a pass that cannot fit in the memory ``device`` has left.

    Args:
        module, in_chans, size, batch, grad: see :func:`activation_bytes`.
        device: where the pass would run.
        hint: what to do instead, ending the message.

    Raises:
        InsufficientMemoryError: (a ValueError) one line naming the size, the estimate
            and the memory available.
    """
    available = memory_available(device)
    if available is None:
        return
    h, w = (int(s) for s in size)
    what = f"{batch} images" if batch > 1 else "one image"
    kind = "forward and backward" if grad else "forward"
    # The input alone first: at 1e9 x 1e9 even a meta tensor's byte count overflows int64.
    need, estimate = batch * in_chans * h * w * _dtype(module).itemsize, "at least"
    if need <= available:
        need = activation_bytes(module, in_chans, (h, w), batch=batch, grad=grad) or 0
        estimate = "an estimated"
    if need > available:
        raise InsufficientMemoryError(
            f"size {h}x{w} (H x W): {what} through this model ({kind}) needs {estimate} "
            f"{format_bytes(need)}, more than the {format_bytes(available)} of memory "
            f"available on {device}; {hint}"
        )
