"""``cifar10``: the official python-format release, or an image-folder copy of it.

Sources, tried in this order:

1. ``path`` given: a ``cifar-10-batches-py`` folder (or a folder holding one), the
   official ``cifar-10-python.tar.gz``, or an image-folder copy (folder or archive with
   ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``, read by the ``folder`` loader).
2. The cache folder (``cache_dir``, else ``$GLOBALPOOL_CACHE``, else
   ``~/.cache/globalpool``) holding ``cifar-10-python.tar.gz`` or ``cifar-10-batches-py``.
3. With ``download=True``: the official archive is fetched from ``url`` into the cache
   folder and kept only when its MD5 equals ``md5``.

The official batches are Python pickles. They are read with :class:`RestrictedUnpickler`,
which resolves only the four globals a numpy array needs (``_reconstruct``, ``ndarray``,
``dtype``) and refuses every other one, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from globalpool.data.archive import is_archive, iter_archive
from globalpool.data.cache import default_cache_dir
from globalpool.data.download import download_file, file_md5
from globalpool.data.imageset import Dataset, ImageSet
from globalpool.data.registry import register_dataset

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds dicts, lists, bytes, numbers and numpy arrays.

    ``find_class`` answers exactly these globals and raises ``pickle.UnpicklingError``
    for any other (``os.system``, ``builtins.eval``, ...):
    ``numpy.core.multiarray._reconstruct`` (also spelt ``numpy._core.multiarray``),
    ``numpy.ndarray`` and ``numpy.dtype``.
    """

    def find_class(self, module: str, name: str):
        if (module, name) in (
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
        ):
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def restricted_loads(data: bytes, what: str) -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (bytes keys, as in the release)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:
        raise ValueError(f"cannot read CIFAR-10 batch {what}: {err}") from err


def _parse_batch(data: bytes, what: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = restricted_loads(data, what)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = list(batch)[:6] if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"CIFAR-10 batch {what} lacks b'data'/b'labels' (found {keys})")
    images = batch[b"data"]
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 2
        or images.shape[1] != 3072
    ):
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images)
        raise ValueError(f"CIFAR-10 batch {what}: b'data' must be uint8 (n, 3072); got {got}")
    if labels.shape != (len(images),) or (
        len(labels) and (labels.min() < 0 or labels.max() >= num_classes)
    ):
        raise ValueError(
            f"CIFAR-10 batch {what}: expected {len(images)} labels in [0, {num_classes})"
        )
    # Rows hold the red, green and blue 32x32 planes one after another.
    return images.reshape(-1, 3, 32, 32), labels


def _read_members(path: Path) -> dict[str, bytes]:
    """The official files (by base name) from a batches folder or the official archive."""
    wanted = {*TRAIN_BATCHES, TEST_BATCH, META}
    found: dict[str, bytes] = {}
    if path.is_dir():
        for name in wanted:
            if (path / name).is_file():
                found[name] = (path / name).read_bytes()
    else:
        for name, data in iter_archive(path):
            base = name.rsplit("/", 1)[-1]
            if base in wanted and data is not None:
                found[base] = data
    missing = sorted(wanted - found.keys())
    if missing:
        raise ValueError(f"{path} is not a complete CIFAR-10 python release: missing {missing}")
    return found


def read_official(path: str | os.PathLike) -> tuple[ImageSet, ImageSet]:
    """Parse the official python-format release (folder or tar.gz) into (train, test)."""
    path = Path(path)
    files = _read_members(path)
    meta = restricted_loads(files[META], f"{path}/{META}")
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names:
        raise ValueError(f"{path}/{META} has no b'label_names' list")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    parts = [_parse_batch(files[b], f"{path}/{b}", len(classes)) for b in TRAIN_BATCHES]
    test_x, test_y = _parse_batch(files[TEST_BATCH], f"{path}/{TEST_BATCH}", len(classes))
    info = {"source": str(path), "format": "python"}
    train = ImageSet(
        torch.from_numpy(np.concatenate([p[0] for p in parts])),
        torch.from_numpy(np.concatenate([p[1] for p in parts])),
        classes,
        info=dict(info),
    )
    test = ImageSet(torch.from_numpy(test_x.copy()), torch.from_numpy(test_y), classes)
    return train, test


def _is_official(path: Path) -> bool:
    """Whether ``path`` holds the python-format release (looks at a few members only)."""
    if path.is_dir():
        return (path / META).is_file() or (path / "data_batch_1").is_file()
    for count, (name, _) in enumerate(iter_archive(path, with_dirs=True)):
        if name.rsplit("/", 1)[-1] in (META, *TRAIN_BATCHES, TEST_BATCH):
            return True
        if count >= 4:
            return False
    return False


def find_cifar10(
    path: str | os.PathLike | None = None,
    *,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    url: str = CIFAR10_URL,
    md5: str | None = CIFAR10_MD5,
) -> Path:
    """Resolve where CIFAR-10 is, downloading it when asked (see the module docstring)."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"CIFAR-10 path {path} does not exist")
        if path.is_dir() and (path / BATCH_DIR).is_dir():
            return path / BATCH_DIR
        return path
    cache = default_cache_dir(cache_dir)
    archive = cache / ARCHIVE_NAME
    if (cache / BATCH_DIR).is_dir():
        return cache / BATCH_DIR
    if archive.is_file():
        if md5 is not None and file_md5(archive) != md5.lower():
            raise ValueError(
                f"{archive} does not have the expected MD5 {md5}: delete it and download again"
            )
        return archive
    if not download:
        raise FileNotFoundError(
            f"CIFAR-10 not found in {cache} (looked for {ARCHIVE_NAME} and {BATCH_DIR}/): "
            f"pass download=True to fetch {url}, or path= to a {BATCH_DIR} folder, the "
            f"official tar.gz, or an image-folder copy such as "
            f"../shared/data/cifar10-jpg.tar.gz"
        )
    return download_file(url, archive, md5)


@register_dataset("cifar10", "CIFAR-10: official python release (download/cache) or folder copy")
def load_cifar10(
    path: str | os.PathLike | None = None,
    *,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    url: str = CIFAR10_URL,
    md5: str | None = CIFAR10_MD5,
    size: int | tuple[int, int] | None = None,
    strict: bool = False,
    cache: bool = True,
    workers: int = 2,
) -> Dataset:
    """Load CIFAR-10 (50,000 train + 10,000 test images, 3x32x32, 10 classes).

    Args:
        path: see the module docstring; None looks in the cache folder.
        download: fetch the official archive into the cache folder when it is missing.
        cache_dir: the cache folder (default ``$GLOBALPOOL_CACHE`` or ``~/.cache/globalpool``).
        url, md5: where to download from and the expected MD5 (tests point these at a
            small archive of their own).
        size, strict, cache, workers: for an image-folder copy, as in
            :func:`globalpool.data.folder.load_folder`.

    Returns:
        Dataset "cifar10" with uint8 (N, 3, 32, 32) images.

    Example:
        >>> ds = load_cifar10("../shared/data/cifar10-jpg.tar.gz")  # doctest: +SKIP
        >>> len(ds.train), len(ds.test), ds.classes[:3]  # doctest: +SKIP
        (50000, 10000, ['airplane', 'automobile', 'bird'])
    """
    where = find_cifar10(path, download=download, cache_dir=cache_dir, url=url, md5=md5)
    if where.is_dir() or is_archive(where):
        if _is_official(where):
            train, test = read_official(where)
            return Dataset.from_splits("cifar10", train, test, {"source": str(where)})
    else:
        raise ValueError(
            f"{where} is neither a {BATCH_DIR} folder, the official tar.gz, nor an image folder"
        )
    from globalpool.data.folder import read_image_folder

    train, test, info = read_image_folder(
        where, size=size, strict=strict, cache=cache, cache_dir=cache_dir, workers=workers
    )
    if test is None:
        raise ValueError(f"{where}: a CIFAR-10 folder copy needs train/ and test/ folders")
    stats = info.pop("train_stats", None)
    return Dataset.from_splits("cifar10", train, test, {**info, "format": "folder"}, stats=stats)
