"""In-memory image sets: uint8 images, int64 labels, class names, optional boxes and masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


def _as_index(index, n: int) -> Tensor:
    """A 1-D int64 index tensor from a slice, a sequence, an array or a bool mask."""
    if isinstance(index, slice):
        return torch.arange(n)[index]
    if isinstance(index, np.ndarray):
        index = torch.from_numpy(index)
    elif not isinstance(index, Tensor):
        index = torch.as_tensor(list(index), dtype=torch.int64)
    if index.dtype == torch.bool:
        if index.shape != (n,):
            raise ValueError(f"a bool index must have shape ({n},); got {tuple(index.shape)}")
        return index.nonzero().flatten()
    if index.is_floating_point() or index.dim() != 1:
        raise TypeError(
            f"index must be a 1-D integer or bool tensor, a slice or a list of ints; "
            f"got dtype {index.dtype} with shape {tuple(index.shape)}"
        )
    index = index.to(torch.int64)
    if index.numel() and (index.min() < -n or index.max() >= n):
        raise ValueError(f"index out of range for an image set of {n} images")
    return index


@dataclass
class ImageSet:
    """Images with their labels, held in memory as tensors.

    Args:
        images: uint8 (N, C, H, W), C = 1 (grey) or 3 (RGB).
        labels: int64 (N,), values in [0, len(classes)).
        classes: class names; ``classes[label]`` names the class of an image.
        boxes: optional float32 (N, 4), the object box as x0, y0, x1, y1 in pixels
            (pixel edges: a box covering columns 3..5 has x0 = 3, x1 = 6).
        masks: optional bool (N, H, W), True on the object's pixels.

    Example:
        >>> import torch
        >>> s = ImageSet(torch.zeros(4, 3, 8, 8, dtype=torch.uint8),
        ...              torch.tensor([0, 1, 0, 1]), ["a", "b"])
        >>> len(s), len(s.subset([1, 3]))
        (4, 2)
    """

    images: Tensor
    labels: Tensor
    classes: list[str]
    boxes: Tensor | None = None
    masks: Tensor | None = None
    info: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or self.images.dtype != torch.uint8:
            raise TypeError(f"images must be a uint8 tensor; got {_describe(self.images)}")
        if self.images.dim() != 4:
            raise ValueError(f"images must be (N, C, H, W); got shape {tuple(self.images.shape)}")
        n = self.images.shape[0]
        if not isinstance(self.labels, Tensor):
            self.labels = torch.as_tensor(self.labels)
        if self.labels.dtype != torch.int64:
            if self.labels.is_floating_point() or self.labels.dtype == torch.bool:
                raise TypeError(f"labels must be integers; got {self.labels.dtype}")
            self.labels = self.labels.to(torch.int64)
        if self.labels.shape != (n,):
            raise ValueError(
                f"labels must have shape ({n},) to match {n} images; got {tuple(self.labels.shape)}"
            )
        if isinstance(self.classes, str) or not isinstance(self.classes, Sequence):
            raise TypeError(f"classes must be a list of names; got {type(self.classes).__name__}")
        self.classes = [str(c) for c in self.classes]
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(
                f"labels must lie in [0, {len(self.classes)}) for {len(self.classes)} classes; "
                f"got values in [{int(self.labels.min())}, {int(self.labels.max())}]"
            )
        if self.boxes is not None:
            self.boxes = torch.as_tensor(self.boxes, dtype=torch.float32)
            if self.boxes.shape != (n, 4):
                raise ValueError(f"boxes must be ({n}, 4); got {tuple(self.boxes.shape)}")
        if self.masks is not None:
            h, w = self.images.shape[-2:]
            if self.masks.dtype != torch.bool or self.masks.shape != (n, h, w):
                raise ValueError(f"masks must be bool ({n}, {h}, {w}); got {_describe(self.masks)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index) -> ImageSet:
        """The images at ``index`` (ints, a bool mask or a slice), in that order."""
        idx = _as_index(index, len(self))
        return ImageSet(
            self.images[idx],
            self.labels[idx],
            list(self.classes),
            None if self.boxes is None else self.boxes[idx],
            None if self.masks is None else self.masks[idx],
            dict(self.info),
        )

    def class_counts(self) -> list[int]:
        """Number of images of each class, in class order."""
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        extra = "".join(
            f", {k}" for k, v in (("boxes", self.boxes), ("masks", self.masks)) if v is not None
        )
        return f"ImageSet({n} images, {c}x{h}x{w}, {len(self.classes)} classes{extra})"


def _describe(x) -> str:
    if isinstance(x, Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, in [0, 1] units.

    Computed exactly from a 256-bin histogram per channel (fast, no float copy).

    Args:
        images: uint8 (N, C, H, W).

    Returns:
        ``(mean, std)``, each a tuple of C floats (population std over all pixels).
    """
    if len(images) == 0:
        raise ValueError("cannot compute channel statistics of an empty image set")
    levels = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        p = hist / hist.sum()
        mean = (p * levels).sum()
        var = (p * (levels - mean).square()).sum()
        means.append(mean.item())
        stds.append(var.sqrt().item())
    return tuple(means), tuple(stds)


@dataclass
class Dataset:
    """A named dataset: a training and a test :class:`ImageSet` with shared classes.

    ``mean`` and ``std`` are per channel, in [0, 1] units, computed from the training
    images (pass them to :class:`~globalpool.data.Loader` and to the model's metadata).

    Example:
        >>> from globalpool.data import load_dataset
        >>> ds = load_dataset("shapes", n_train=60, n_test=30, seed=0)
        >>> ds.train.images.shape, ds.classes
        (torch.Size([60, 3, 32, 32]), ['circle', 'square', 'triangle'])
    """

    name: str
    train: ImageSet
    test: ImageSet
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_splits(
        cls,
        name: str,
        train: ImageSet,
        test: ImageSet,
        info: dict | None = None,
        *,
        stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    ) -> Dataset:
        """Build a dataset, checking both splits agree, with mean/std from ``train``.

        ``stats`` passes an already computed ``channel_stats(train.images)`` (a cache).
        """
        if train.classes != test.classes:
            raise ValueError(
                f"{name}: train and test classes differ: {train.classes} vs {test.classes}"
            )
        if train.images.shape[1:] != test.images.shape[1:]:
            raise ValueError(
                f"{name}: train images are {tuple(train.images.shape[1:])} but test images "
                f"are {tuple(test.images.shape[1:])}"
            )
        mean, std = stats if stats is not None else channel_stats(train.images)
        return cls(name, train, test, list(train.classes), mean, std, dict(info or {}))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of every image."""
        h, w = self.train.images.shape[-2:]
        return (int(h), int(w))

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.train)}, test={len(self.test)}, "
            f"classes={self.classes}, image={self.in_chans}x{self.image_size[0]}x"
            f"{self.image_size[1]})"
        )
