"""Feature shapes and minimum input sizes of a backbone, found by running it (one zero
image, eval mode, no grad), so they hold for any backbone, not only for the layer types a
shape formula would know."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["feature_shape", "min_input_size", "probe_mode"]


@contextlib.contextmanager
def probe_mode(module: nn.Module) -> Iterator[None]:
    """For a tiny probing pass: eval mode, no grad and one thread, then every submodule's
    training flag and torch's thread count restored (batch-norm statistics and dropout
    are untouched). One thread: these passes are tiny, and on a busy machine a thread pool
    makes them up to 100x slower (measured: 0.17 s vs 0.002 s for LeNet-5 at 32x32)."""
    modes = {m: m.training for m in module.modules()}
    threads = torch.get_num_threads()
    module.eval()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)
        for m, mode in modes.items():
            m.training = mode


def feature_shape(
    backbone: nn.Module, in_chans: int, input_size: tuple[int, int]
) -> tuple[int, ...] | None:
    """Shape of one image's output, e.g. (C, h, w), or None when the backbone cannot run
    at that size (a kernel larger than its input, an empty map).

    Runs one zero image in eval mode under no_grad (batch norm statistics and dropout are
    untouched) and restores every submodule's training flag. (The meta device would avoid
    the compute, but its Python decompositions of GELU and batch norm make it slower than
    these small real passes.)
    """
    param = next(backbone.parameters(), None)
    kw = {"device": param.device, "dtype": param.dtype} if param is not None else {}
    x = torch.zeros(1, in_chans, *input_size, **kw)
    try:
        with probe_mode(backbone):
            out = backbone(x)
    except (RuntimeError, ValueError, IndexError, AssertionError):  # torch._assert raises the last
        return None
    if not isinstance(out, torch.Tensor) or out.numel() == 0:
        return None
    return tuple(out.shape[1:])


def min_input_size(
    backbone: nn.Module, in_chans: int, input_size: tuple[int, int]
) -> tuple[int, int]:
    """Smallest (H, W) the backbone accepts with >= 1x1 feature maps.

    Binary search per axis, the other axis held at ``input_size``; assumes (as for any
    stack of convolutions and pools) that if a size works, every larger size works.
    """
    h, w = input_size
    if feature_shape(backbone, in_chans, (h, w)) is None:
        raise ValueError(f"the backbone cannot run on its own input size {(h, w)}")

    def smallest(axis: int) -> int:
        lo, hi = 1, input_size[axis]  # hi is known to work
        while lo < hi:
            mid = (lo + hi) // 2
            size = (mid, w) if axis == 0 else (h, mid)
            if feature_shape(backbone, in_chans, size) is not None:
                hi = mid
            else:
                lo = mid + 1
        return lo

    return smallest(0), smallest(1)
