"""``mnist`` and ``fashion_mnist``: the official idx files (28x28 grey, 10 classes).

Both data sets ship as four idx files (LeCun's format: a big-endian magic number whose
third byte is the element type and fourth the number of dimensions, one big-endian
uint32 per dimension, then the raw elements), usually gzip-compressed:

    train-images-idx3-ubyte[.gz]  uint8 (60000, 28, 28)
    train-labels-idx1-ubyte[.gz]  uint8 (60000,)
    t10k-images-idx3-ubyte[.gz]   uint8 (10000, 28, 28)
    t10k-labels-idx1-ubyte[.gz]   uint8 (10000,)

Sources, tried in this order: ``path`` (a folder holding the four files, .gz or not);
the cache folder (``cache_dir``, else ``$GLOBALPOOL_CACHE``, else ``~/.cache/globalpool``)
under ``mnist/`` or ``fashion_mnist/``; with ``download=True``, the official files fetched
into that folder, each kept only when its MD5 matches the release's.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from globalpool.data.cache import default_cache_dir
from globalpool.data.download import download_file
from globalpool.data.imageset import Dataset, ImageSet
from globalpool.data.registry import register_dataset

__all__ = ["IDX_FILES", "load_fashion_mnist", "load_idx_dataset", "load_mnist", "read_idx"]

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# MD5 of each official .gz file, as the releases (and torchvision) list them.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# idx type byte -> numpy dtype (big-endian); only uint8 occurs in these releases.
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# Larger than any idx file of these data sets by far: a header claiming more is damaged,
# and is refused before anything that size is allocated.
_MAX_ELEMENTS = 1 << 31


def read_idx(data: bytes, what: str = "idx file") -> np.ndarray:
    """Parse one idx file's bytes (already decompressed) into a numpy array.

    Args:
        data: the whole file.
        what: the file's name, for error messages.

    Returns:
        An array of the header's shape and type (uint8 for MNIST's files).

    Raises:
        ValueError: the magic number is wrong, or the body is shorter or longer than the
            header's dimensions say (a truncated or corrupt file).
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(
            f"{what} is not an idx file: expected the magic bytes 00 00 <type> <ndim>, "
            f"got {data[:4].hex(' ') or 'an empty file'}"
        )
    dtype = np.dtype(_IDX_TYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(f"{what}: truncated idx header ({len(data)} bytes, {ndim} dimensions)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape, dtype=np.int64))
    if count > _MAX_ELEMENTS:
        raise ValueError(f"{what}: header claims shape {shape}, larger than any idx data set")
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(
            f"{what} is {state}: header says shape {shape} ({expected} bytes), "
            f"file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def _read_file(path: Path) -> bytes:
    """The bytes of an idx file, gunzipped when its name ends in .gz."""
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path} is not a readable gzip file (truncated or corrupt): {err}"
        ) from None


def _locate(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _find_files(
    name: str,
    path: str | os.PathLike | None,
    download: bool,
    cache_dir: str | os.PathLike | None,
    url: str,
    md5: dict[str, str] | None,
) -> dict[str, Path]:
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{name}: path {folder} is not a folder; expected a folder holding "
                f"{', '.join(f + '[.gz]' for f in IDX_FILES)}"
            )
    else:
        folder = default_cache_dir(cache_dir) / name
    found = {stem: _locate(folder, stem) for stem in IDX_FILES}
    missing = [stem for stem, p in found.items() if p is None]
    if missing and path is None and download:
        for stem in missing:
            checksum = None if md5 is None else md5[stem]
            found[stem] = download_file(f"{url}{stem}.gz", folder / f"{stem}.gz", checksum)
        missing = []
    if missing:
        hint = "" if path is not None else f"; pass download=True to fetch them from {url}"
        raise FileNotFoundError(
            f"{name}: {folder} lacks {', '.join(f + '[.gz]' for f in missing)}{hint}, or "
            f"path= to a folder holding the four idx files"
        )
    return found  # type: ignore[return-value]


def load_idx_dataset(
    name: str,
    classes: tuple[str, ...],
    path: str | os.PathLike | None,
    *,
    download: bool,
    cache_dir: str | os.PathLike | None,
    url: str,
    md5: dict[str, str] | None,
    channels: int,
    flip_preserves_label: bool,
) -> Dataset:
    """Read the four idx files of an MNIST-format data set into a :class:`Dataset`.

    ``flip_preserves_label`` goes into ``info``: whether a mirrored image keeps its class
    (clothes do, digits do not); training warns when flips are on where they do not."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; got {channels!r}")
    files = _find_files(name, path, download, cache_dir, url, md5)
    arrays = {stem: read_idx(_read_file(p), str(p)) for stem, p in files.items()}
    splits = []
    for prefix in ("train", "t10k"):
        images = arrays[f"{prefix}-images-idx3-ubyte"]
        labels = arrays[f"{prefix}-labels-idx1-ubyte"]
        where = files[f"{prefix}-images-idx3-ubyte"]
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(f"{where}: expected uint8 images (n, h, w); got {images.dtype} "
                             f"{images.shape}")  # fmt: skip
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"{files[f'{prefix}-labels-idx1-ubyte']}: expected {len(images)} labels to "
                f"match {where}; got shape {labels.shape}"
            )
        if len(labels) and int(labels.max()) >= len(classes):
            raise ValueError(
                f"{files[f'{prefix}-labels-idx1-ubyte']}: labels must lie in "
                f"[0, {len(classes)}); found {int(labels.max())}"
            )
        x = torch.from_numpy(images)[:, None].expand(-1, channels, -1, -1).contiguous()
        splits.append(ImageSet(x, torch.from_numpy(labels.astype(np.int64)), list(classes)))
    info = {"source": str(files[IDX_FILES[0]].parent), "format": "idx", "channels": channels,
            "flip_preserves_label": flip_preserves_label}  # fmt: skip
    return Dataset.from_splits(name, splits[0], splits[1], info)


@register_dataset(
    "fashion_mnist", "Fashion-MNIST: official idx files (path= or download), 28x28 grey"
)
def load_fashion_mnist(
    path: str | os.PathLike | None = None,
    *,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    url: str = FASHION_MNIST_URL,
    md5: dict[str, str] | None = FASHION_MNIST_MD5,
    channels: int = 1,
) -> Dataset:
    """Load Fashion-MNIST (Xiao et al. 2017): 60,000 train + 10,000 test clothing images.

    Args:
        path: a folder holding the four idx files (.gz or not), such as
            ``../shared/data/fashion-mnist``; None looks in ``<cache>/fashion_mnist``.
        download: fetch missing files from ``url`` into the cache folder (MD5 checked).
        cache_dir: the cache folder (default ``$GLOBALPOOL_CACHE`` or ``~/.cache/globalpool``).
        url, md5: base address and per-file MD5s of the release (tests point them at files
            of their own; ``md5=None`` skips the check).
        channels: 1 (grey) or 3 (grey repeated, for RGB models).

    Returns:
        Dataset "fashion_mnist": uint8 (N, channels, 28, 28), 10 named classes.

    Example:
        >>> ds = load_fashion_mnist("../shared/data/fashion-mnist")  # doctest: +SKIP
        >>> len(ds.train), len(ds.test), ds.classes[0]  # doctest: +SKIP
        (60000, 10000, 'T-shirt/top')
    """
    return load_idx_dataset(
        "fashion_mnist", FASHION_MNIST_CLASSES, path, download=download,
        cache_dir=cache_dir, url=url, md5=md5, channels=channels, flip_preserves_label=True,
    )  # fmt: skip


@register_dataset("mnist", "MNIST handwritten digits: official idx files (path= or download)")
def load_mnist(
    path: str | os.PathLike | None = None,
    *,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    url: str = MNIST_URL,
    md5: dict[str, str] | None = MNIST_MD5,
    channels: int = 1,
) -> Dataset:
    """Load MNIST (LeCun et al. 1998): 60,000 train + 10,000 test handwritten digits.

    Args: as :func:`load_fashion_mnist` (cache sub-folder ``mnist``).

    Returns:
        Dataset "mnist": uint8 (N, channels, 28, 28), classes "0".."9". A horizontal flip
        changes what a digit means: train it with ``flip=False`` (``--no-flip``).
    """
    return load_idx_dataset(
        "mnist", MNIST_CLASSES, path, download=download,
        cache_dir=cache_dir, url=url, md5=md5, channels=channels, flip_preserves_label=False,
    )  # fmt: skip
