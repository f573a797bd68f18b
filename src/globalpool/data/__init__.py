"""Datasets (one registry) and the in-memory batch loader. Knows no model.

Importing this package registers every dataset: ``shapes``, ``digits``, ``cifar10``,
``cifar_canvas``, ``fashion_canvas``, ``folder``, ``mnist`` and ``fashion_mnist``.
"""

from globalpool.data import (  # noqa: F401
    cifar10,
    cifar_canvas,
    digits,
    fashion_canvas,
    folder,
    mnist,
    shapes,
)
from globalpool.data.augment import Augment
from globalpool.data.folder import read_image
from globalpool.data.imageset import Dataset, ImageSet, channel_stats
from globalpool.data.loader import Loader, normalize
from globalpool.data.registry import dataset_entry, list_datasets, load_dataset, register_dataset
from globalpool.data.split import train_val_split

__all__ = [
    "Augment",
    "Dataset",
    "ImageSet",
    "Loader",
    "channel_stats",
    "dataset_entry",
    "list_datasets",
    "load_dataset",
    "normalize",
    "read_image",
    "register_dataset",
    "train_val_split",
]
