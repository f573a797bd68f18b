"""Objects pasted on a larger canvas, with their true boxes: the shared construction of
``fashion_canvas`` and ``cifar_canvas``.

The "translated MNIST" construction of Spatial Transformer Networks (Jaderberg et al.
2015): each item is pasted at a random position of a black ``size`` x ``size`` canvas
(optionally over ``clutter`` 8x8 fragments cut from other items, their "cluttered
MNIST"); the pasted item's tight box and pixel mask are the ground truth for
localization. Everything is drawn with torch's CPU generator, so a call returns the same
tensors on every machine.
"""

from __future__ import annotations

import torch

__all__ = ["FRAGMENT", "balanced_first", "paste", "x_ranges"]

FRAGMENT = 8  # side of a clutter fragment, as in cluttered MNIST


def x_ranges(size: int, item: int, test_positions: str, seed: int) -> dict[str, tuple[int, int]]:
    """Check the canvas arguments and give each split's range of left edges x0 (inclusive).

    With ``m = size - item``: the training split and the plain test split
    (``test_positions="seen"``) draw x0 from ``[0, m // 2]``, the shifted test split from
    ``[m // 2 + 1, m]`` (positions training never uses); y0 is drawn from ``[0, m]``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not item <= size <= 256:
        raise ValueError(f"size must be an integer in [{item}, 256]; got {size!r}")
    if test_positions not in ("seen", "shifted"):
        raise ValueError(f"test_positions must be 'seen' or 'shifted'; got {test_positions!r}")
    room = size - item
    if test_positions == "shifted" and room < 2:
        raise ValueError(f"test_positions='shifted' needs size >= {item + 2}; got {size}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    seen, shifted = (0, room // 2), (room // 2 + 1, room)
    return {"train": seen, "test": shifted if test_positions == "shifted" else seen}


def balanced_first(labels: torch.Tensor, n: int, num_classes: int, seed: int = 12345):
    """Indices (sorted) of the first ``n`` items of a class-balanced order: round-robin
    over the classes, each class in a seeded order, so any ``n`` is near-balanced."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    rank = torch.empty_like(order)
    for c in range(num_classes):
        members = order[labels[order] == c]
        rank[members] = torch.arange(len(members)) * num_classes + c
    return torch.argsort(rank)[:n].sort().values


def paste(
    items: torch.Tensor, size: int, x_range: tuple[int, int], g: torch.Generator, *,
    clutter: int = 0, clutter_from: torch.Tensor | None = None, mask_level: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Paste ``items`` (uint8 (N, C, k, k)) on black ``size`` x ``size`` canvases.

    Each item's left edge x0 is drawn from ``x_range`` (inclusive), its top edge y0 from
    [0, size - k]; ``clutter`` 8x8 fragments of random items of ``clutter_from`` go
    underneath (the brighter pixel wins where they overlap).

    Args:
        mask_level: an item pixel belongs to the object (its mask and tight box) when
            its brightest channel is at least this; 0: the whole pasted square.

    Returns:
        canvases uint8 (N, C, size, size), boxes float32 (N, 4) as (x0, y0, x1, y1)
        pixel edges, masks bool (N, size, size).
    """
    n, channels, k = items.shape[0], items.shape[1], items.shape[-1]
    items = items.permute(0, 2, 3, 1)  # (N, k, k, C): pasted with advanced indexing below
    x0 = torch.randint(x_range[0], x_range[1] + 1, (n,), generator=g)
    y0 = torch.randint(0, size - k + 1, (n,), generator=g)
    canvas = torch.zeros(n, size, size, channels, dtype=torch.uint8)
    rows = torch.arange(n)[:, None, None]
    if clutter:
        source = items if clutter_from is None else clutter_from.permute(0, 2, 3, 1)
        f = FRAGMENT
        src = torch.randint(0, len(source), (n, clutter), generator=g)
        cy, cx = (torch.randint(0, k - f + 1, (n, clutter), generator=g) for _ in range(2))
        py, px = (torch.randint(0, size - f + 1, (n, clutter), generator=g) for _ in range(2))
        offs = torch.arange(f)
        for j in range(clutter):
            patch = source[src[:, j, None, None], (cy[:, j, None] + offs)[:, :, None],
                           (cx[:, j, None] + offs)[:, None, :]]  # fmt: skip
            ys = (py[:, j, None] + offs)[:, :, None]
            xs = (px[:, j, None] + offs)[:, None, :]
            canvas[rows, ys, xs] = torch.maximum(canvas[rows, ys, xs], patch)
    offs = torch.arange(k)
    ys, xs = (y0[:, None] + offs)[:, :, None], (x0[:, None] + offs)[:, None, :]
    canvas[rows, ys, xs] = torch.maximum(canvas[rows, ys, xs], items)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    masks[rows, ys, xs] = items.amax(-1) >= mask_level
    filled_rows, filled_cols = masks.any(2), masks.any(1)
    first = lambda m: m.to(torch.uint8).argmax(1)  # noqa: E731
    last = lambda m: size - 1 - first(m.flip(1))  # noqa: E731
    boxes = torch.stack(
        [first(filled_cols), first(filled_rows), last(filled_cols) + 1, last(filled_rows) + 1], 1
    ).to(torch.float32)
    # a fresh NCHW tensor: with one channel a permuted view would pass as channels-last
    # (its strides say so), and convolutions would then take other kernels
    images = torch.empty(n, channels, size, size, dtype=torch.uint8)
    images.copy_(canvas.permute(0, 3, 1, 2))
    return images, boxes, masks
