"""``cifar_canvas``: CIFAR-10 images pasted on a larger black canvas, with true boxes.

The construction of :mod:`globalpool.data.canvas` applied to natural images: each 32x32
CIFAR-10 image (object and its own background) is pasted at a random position of a
``size`` x ``size`` black canvas, and the pasted square is the ground-truth box and mask.
So a map that localizes has to find the photo on the canvas and cover it, not only its
most telling part. Built from the official release (``path``: the archive or its folder).

Positions follow ``fashion_canvas``: with ``m = size - 32``, x0 is drawn from
``[0, m // 2]`` for training and the plain test split (``test_positions="seen"``), from
``[m // 2 + 1, m]`` for the shifted one; y0 from ``[0, m]`` everywhere.

Example:
    >>> ds = load_cifar_canvas("cifar-10-python.tar.gz", n_train=100)  # doctest: +SKIP
    >>> ds.train.images.shape, ds.train.boxes.shape  # doctest: +SKIP
    (torch.Size([100, 3, 64, 64]), torch.Size([100, 4]))
"""

from __future__ import annotations

import os

import torch

from globalpool.data.canvas import balanced_first, paste, x_ranges
from globalpool.data.cifar10 import CIFAR10_CLASSES, load_cifar10
from globalpool.data.imageset import Dataset, ImageSet
from globalpool.data.registry import register_dataset

__all__ = ["load_cifar_canvas"]

ITEM = 32  # the side of a CIFAR-10 image


def _check_count(n, available: int, split: str) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= available):
        raise ValueError(
            f"n_{split} must be an integer in [1, {available}] (the CIFAR-10 {split} "
            f"images); got {n!r}"
        )


@register_dataset(
    "cifar_canvas",
    "CIFAR-10 images pasted on a larger black canvas, with true boxes (official release)",
)
def load_cifar_canvas(
    path: str | os.PathLike | None = None,
    *,
    size: int = 64,
    n_train: int | None = None,
    n_test: int | None = None,
    test_positions: str = "seen",
    seed: int = 0,
) -> Dataset:
    """CIFAR-10 images at random positions on a ``size`` x ``size`` black canvas.

    Args:
        path: the official CIFAR-10 python archive or its extracted folder (default: the
            cache folder, as ``cifar10``).
        size: canvas side, in pixels, from 32 (no room to move) to 256.
        n_train, n_test: images per split (default: all 50,000 and 10,000), the first of
            a seeded class-balanced order.
        test_positions: ``"seen"`` or ``"shifted"`` (see the module docstring); shifted
            needs ``size >= 34``.
        seed: seed of the positions.

    Returns:
        Dataset "cifar_canvas": uint8 (N, 3, size, size) images, the 10 CIFAR-10 classes,
        float32 (N, 4) boxes (x0, y0, x1, y1, pixel edges) and bool (N, size, size)
        masks, both the pasted square.
    """
    ranges = x_ranges(size, ITEM, test_positions, seed)
    source = load_cifar10(path)
    splits = []
    for index, (split, part, n) in enumerate(
        (("train", source.train, n_train), ("test", source.test, n_test))
    ):
        _check_count(n, len(part.labels), split)
        keep = torch.arange(len(part.labels)) if n is None else balanced_first(part.labels, n, 10)
        g = torch.Generator().manual_seed(seed * 2 + index)
        images, boxes, masks = paste(part.images[keep], size, ranges[split], g)
        splits.append(ImageSet(images, part.labels[keep], list(CIFAR10_CLASSES), boxes, masks))
    info = {"source": str(path) if path is not None else "cache", "size": size,
            "test_positions": test_positions, "train_x0": list(ranges["train"]),
            "test_x0": list(ranges["test"]), "seed": seed,
            "flip_preserves_label": True}  # fmt: skip
    return Dataset.from_splits("cifar_canvas", splits[0], splits[1], info)
