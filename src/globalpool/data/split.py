"""Seeded, stratified splits of an :class:`ImageSet`."""

from __future__ import annotations

import torch

from globalpool.data.imageset import ImageSet


def stratified_split_index(
    labels: torch.Tensor, fraction: float, seed: int, num_classes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (keep, held_out): ``round(fraction * n_c)`` of each class c held out.

    Both index tensors are sorted ascending, so the original order is kept.
    """
    if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValueError(f"the split fraction must be a number in [0, 1); got {fraction!r}")
    g = torch.Generator().manual_seed(int(seed))
    k = int(labels.max()) + 1 if num_classes is None and len(labels) else (num_classes or 0)
    held = []
    for c in range(k):
        idx = (labels == c).nonzero().flatten()
        n_held = round(fraction * len(idx))
        held.append(idx[torch.randperm(len(idx), generator=g)[:n_held]])
    held_mask = torch.zeros(len(labels), dtype=torch.bool)
    if held:
        held_mask[torch.cat(held)] = True
    return (~held_mask).nonzero().flatten(), held_mask.nonzero().flatten()


def train_val_split(
    imageset: ImageSet, val_fraction: float, seed: int = 0
) -> tuple[ImageSet, ImageSet]:
    """Split a training set into (train, val), stratified by class and seeded.

    Each class gives ``round(val_fraction * n_class)`` images to val; the rest stay in
    train, in their original order. Use it on the training split only: the test split
    stays untouched.

    Args:
        imageset: the set to split (N images).
        val_fraction: in [0, 1); 0 gives an empty val set.
        seed: the same seed gives the same split.

    Returns:
        ``(train, val)`` ImageSets with N_train + N_val = N.

    Example:
        >>> from globalpool.data import load_dataset
        >>> ds = load_dataset("shapes", n_train=90, n_test=9)
        >>> tr, va = train_val_split(ds.train, 0.2, seed=0)
        >>> len(tr), len(va), va.class_counts()
        (72, 18, [6, 6, 6])
    """
    keep, held = stratified_split_index(
        imageset.labels, val_fraction, seed, num_classes=len(imageset.classes)
    )
    return imageset.subset(keep), imageset.subset(held)
