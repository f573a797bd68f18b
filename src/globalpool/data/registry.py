"""The dataset registry: ``load_dataset(name, **kw)`` and ``list_datasets()``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from globalpool.data.imageset import Dataset
from globalpool.data.split import stratified_split_index


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    loader: Callable[..., Dataset]
    summary: str  # one line, for the CLI and the docs


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, summary: str):
    """Function decorator that registers a dataset loader under ``name``."""

    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        _DATASETS[name] = DatasetEntry(name, fn, summary)
        return fn

    return deco


def list_datasets() -> list[str]:
    """Names of every registered dataset, in registration order."""
    return list(_DATASETS)


def dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name``; ValueError naming the known datasets otherwise."""
    if not isinstance(name, str) or name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(_DATASETS)}")
    return _DATASETS[name]


def load_dataset(
    name: str,
    *,
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
    **kwargs,
) -> Dataset:
    """Load the dataset registered as ``name`` into memory.

    Args:
        name: a name from :func:`list_datasets` (``shapes``, ``digits``, ``cifar10``,
            ``folder``).
        train_subset: keep only this many training images, a seeded stratified sample
            (for small-data runs, where the overfitting of FC heads shows most); the
            test split is kept whole unless ``test_subset`` is given.
        test_subset: keep only this many test images, a seeded stratified sample (for
            quick checks only: published comparisons use the whole test split).
        subset_seed: seed of both samples.
        **kwargs: options of that dataset's loader (see ``globalpool.data.<name>``).

    Returns:
        A :class:`Dataset` with uint8 (N, C, H, W) train and test images.

    Example:
        >>> ds = load_dataset("digits", size=16)
        >>> ds.train.images.shape[1:]
        torch.Size([1, 16, 16])
    """
    entry = dataset_entry(name)
    params = inspect.signature(entry.loader).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        allowed = [p for p in params if params[p].kind is not inspect.Parameter.VAR_KEYWORD]
        raise TypeError(
            f"dataset {name!r} got unknown option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(allowed)}"
        )
    ds = entry.loader(**kwargs)
    train = _subsample(ds.train, train_subset, "train_subset", name, subset_seed)
    test = _subsample(ds.test, test_subset, "test_subset", name, subset_seed)
    if train is ds.train and test is ds.test:
        return ds
    info = {**ds.info, "train_subset": train_subset, "test_subset": test_subset,
            "subset_seed": subset_seed}  # fmt: skip
    stats = (ds.mean, ds.std) if train is ds.train else None
    return Dataset.from_splits(ds.name, train, test, info, stats=stats)


def _subsample(images, size: int | None, option: str, name: str, seed: int):
    """A seeded stratified sample of ``size`` images (the set itself for None or all)."""
    if size is None:
        return images
    n = len(images)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= n:
        raise ValueError(f"{option} must be an integer in [1, {n}] for {name!r}; got {size!r}")
    if size == n:
        return images
    keep, _ = stratified_split_index(
        images.labels, 1 - size / n, seed, num_classes=len(images.classes)
    )
    return images.subset(keep)
