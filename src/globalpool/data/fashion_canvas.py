"""``fashion_canvas``: Fashion-MNIST items placed on a larger canvas, with true boxes.

The "translated MNIST" construction of Spatial Transformer Networks (Jaderberg et al.
2015), applied to clothing: each 28x28 Fashion-MNIST item is pasted at a random position
on a ``size`` x ``size`` black canvas (optionally over ``clutter`` 8x8 fragments of other
items, as in their "cluttered MNIST"); the pasted item's tight box and pixel mask are the
ground truth for localization. Real pixels, no download: the package ships 3,000
training items (300 per class, from the official training file) and 1,000 test items
(100 per class, from the official test file) in ``builtin/fashion_items.safetensors.gz``
(1.8 MB; Fashion-MNIST is MIT-licensed, its licence and attribution lie beside the file).
``path=`` builds the same canvases from the four official idx files instead, with every
item available.

Positions measure translation robustness. With ``m = size - 28`` the item's left edge
``x0`` is drawn from ``[0, m // 2]`` for the training split and for the plain test split
(``test_positions="seen"``), and from ``[m // 2 + 1, m]`` for the shifted test split
(``test_positions="shifted"``): positions the training split never uses, moved right by
1 to m pixels. The top edge ``y0`` is drawn from ``[0, m]`` in every split. Horizontal
flips would carry items into the shifted positions: train without them (``--no-flip``,
or no augmentation) when measuring translation.

Everything is generated from the shipped pixels and ``seed`` with torch's CPU generator,
so a given call returns the same tensors on every machine.

Example:
    >>> ds = load_fashion_canvas(n_train=100, n_test=50)
    >>> ds.train.images.shape, ds.train.boxes.shape
    (torch.Size([100, 1, 40, 40]), torch.Size([100, 4]))
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from globalpool.data.canvas import balanced_first, paste, x_ranges
from globalpool.data.imageset import Dataset, ImageSet
from globalpool.data.mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from globalpool.data.registry import register_dataset

__all__ = ["ITEMS_FILE", "ITEMS_SHA256", "load_fashion_canvas", "write_items_file"]

ITEMS_FILE = Path(__file__).parent / "builtin" / "fashion_items.safetensors.gz"
# sha256 of ITEMS_FILE as written by write_items_file from the official files (a test
# rebuilds it from ../shared/data/fashion-mnist and compares)
ITEMS_SHA256 = "1b7767157bdf27b40970860cda25cd1b2092824222983155da364173f3851809"
ITEM = 28  # the side of a Fashion-MNIST item
# Pixels at or above this grey level belong to the item (its mask and tight box); fainter
# ones are the scanner's background texture (3.6% of all pixels lie in 1..15).
MASK_LEVEL = 16


def write_items_file(
    source: str | os.PathLike, out: str | os.PathLike = ITEMS_FILE, *,
    per_class_train: int = 300, per_class_test: int = 100, seed: int = 0,
) -> str:  # fmt: skip
    """Write the shipped items: a seeded, class-balanced sample of the official files.

    Stored as gzip (no timestamp) of a safetensors file, so the bytes depend on the
    inputs alone: uint8 ``train_images`` (N, 28, 28), int64 ``train_labels``, int64
    ``train_index`` (the rows of the official file), and the same for ``test``.

    Args:
        source: folder holding the four official Fashion-MNIST idx files.
        out: the file to write.
        per_class_train, per_class_test: items per class in each split.
        seed: seed of the sample.

    Returns:
        the sha256 of the written file.
    """
    ds = load_fashion_mnist(source, md5=None)
    rng = np.random.default_rng(seed)
    tensors = {}
    for split, images, per_class in (("train", ds.train, per_class_train),
                                     ("test", ds.test, per_class_test)):  # fmt: skip
        labels = images.labels.numpy()
        rows = np.sort(np.concatenate([
            rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)
        ]))  # fmt: skip
        index = torch.from_numpy(rows.astype(np.int64))
        tensors[f"{split}_images"] = images.images[index, 0].contiguous()
        tensors[f"{split}_labels"] = images.labels[index].contiguous()
        tensors[f"{split}_index"] = index
    data = gzip.compress(st_save(tensors), compresslevel=9, mtime=0)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _shipped_items() -> dict[str, torch.Tensor]:
    return st_load(gzip.decompress(ITEMS_FILE.read_bytes()))


def _items(path, split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) items and their labels: the shipped ones, or the official
    files' at ``path``; the first ``n`` of a seeded class-balanced order when n is given."""
    if path is None:
        shipped = _shipped_items()
        items, labels = shipped[f"{split}_images"], shipped[f"{split}_labels"]
    else:
        ds = load_fashion_mnist(path)
        part = ds.train if split == "train" else ds.test
        items, labels = part.images[:, 0], part.labels
    if n is None or n == len(items):
        return items, labels
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(items):
        source = "shipped" if path is None else "official"
        raise ValueError(
            f"n_{split} must be an integer in [1, {len(items)}] (the {source} {split} "
            f"items); got {n!r}"
        )
    keep = balanced_first(labels, n, 10)
    return items[keep], labels[keep]


@register_dataset(
    "fashion_canvas",
    "Fashion-MNIST items placed on a larger canvas, with true boxes (built in, no download)",
)
def load_fashion_canvas(
    *,
    size: int = 40,
    n_train: int | None = None,
    n_test: int | None = None,
    test_positions: str = "seen",
    clutter: int = 0,
    seed: int = 0,
    path: str | os.PathLike | None = None,
) -> Dataset:
    """Fashion-MNIST items at random positions on a ``size`` x ``size`` canvas.

    Args:
        size: canvas side, in pixels, from 28 (no room to move) to 256.
        n_train, n_test: items per split (default: all; 3,000 and 1,000 shipped, 60,000
            and 10,000 with ``path``), a class-balanced choice.
        test_positions: ``"seen"``: test items at positions drawn like the training
            split's; ``"shifted"``: at positions the training split never uses (see the
            module docstring). Needs ``size >= 30``.
        clutter: 8x8 fragments of other items (of the same split) under each item.
        seed: seed of positions and clutter (the items are fixed).
        path: a folder with the official idx files, instead of the shipped items.

    Returns:
        Dataset "fashion_canvas": uint8 (N, 1, size, size) images, 10 named classes,
        float32 (N, 4) boxes (x0, y0, x1, y1, pixel edges) and bool (N, size, size)
        masks of the item's pixels.
    """
    ranges = x_ranges(size, ITEM, test_positions, seed)
    if isinstance(clutter, bool) or not isinstance(clutter, int) or not 0 <= clutter <= 64:
        raise ValueError(f"clutter must be an integer in [0, 64]; got {clutter!r}")
    splits = []
    for index, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        items, labels = _items(path, split, n)
        g = torch.Generator().manual_seed(seed * 2 + index)
        images, boxes, masks = paste(
            items[:, None], size, ranges[split], g, clutter=clutter, mask_level=MASK_LEVEL
        )
        splits.append(ImageSet(images, labels, list(FASHION_MNIST_CLASSES), boxes, masks))
    info = {"source": "shipped items" if path is None else str(path), "size": size,
            "test_positions": test_positions, "train_x0": list(ranges["train"]),
            "test_x0": list(ranges["test"]), "clutter": clutter, "seed": seed,
            "flip_preserves_label": True}  # fmt: skip
    return Dataset.from_splits("fashion_canvas", splits[0], splits[1], info)
