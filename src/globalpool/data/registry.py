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
    name: str, *, train_subset: int | None = None, subset_seed: int = 0, **kwargs
) -> Dataset:
    """Load the dataset registered as ``name`` into memory.

    Args:
        name: a name from :func:`list_datasets` (``shapes``, ``digits``, ``cifar10``,
            ``folder``).
        train_subset: keep only this many training images, a seeded stratified sample
            (for small-data runs, where the overfitting of FC heads shows most); the
            test split is never subsampled.
        subset_seed: seed of that sample.
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
    if train_subset is None:
        return ds
    n = len(ds.train)
    if not isinstance(train_subset, int) or not 0 < train_subset <= n:
        raise ValueError(
            f"train_subset must be an integer in [1, {n}] for {name!r}; got {train_subset!r}"
        )
    if train_subset == n:
        return ds
    keep, _ = stratified_split_index(
        ds.train.labels, 1 - train_subset / n, subset_seed, num_classes=len(ds.classes)
    )
    info = {**ds.info, "train_subset": train_subset, "subset_seed": subset_seed}
    return Dataset.from_splits(ds.name, ds.train.subset(keep), ds.test, info)
