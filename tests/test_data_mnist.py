"""The idx reader and the ``mnist`` / ``fashion_mnist`` datasets, on idx files written here.

The expected arrays come from numpy directly; the files are built byte by byte with
``struct`` (big-endian header), independently of the reader under test.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from globalpool.data import list_datasets, load_dataset
from globalpool.data.mnist import FASHION_MNIST_CLASSES, IDX_FILES, read_idx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file: 0, 0, type 0x08 (uint8), ndim, one big-endian uint32 per dim, data."""
    assert array.dtype == np.uint8
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def write_release(folder: Path, n_train=40, n_test=20, seed=0, compress=True) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.permutation(np.arange(n_test) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        data = idx_bytes(array)
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_reads_the_four_files_gz_or_not(tmp_path, name, compress):
    arrays = write_release(tmp_path / "d", compress=compress)
    ds = load_dataset(name, path=tmp_path / "d")
    assert ds.name == name and name in list_datasets()
    assert ds.train.images.shape == (40, 1, 28, 28) and ds.test.images.shape == (20, 1, 28, 28)
    assert np.array_equal(ds.train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(ds.test.images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert ds.train.labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.test.labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    expected = list(FASHION_MNIST_CLASSES) if name == "fashion_mnist" else list("0123456789")
    assert ds.classes == expected
    mean = arrays["train-images-idx3-ubyte"].mean() / 255
    assert ds.mean[0] == pytest.approx(mean, abs=1e-9)


def test_three_channels_repeat_the_grey_plane(tmp_path):
    arrays = write_release(tmp_path / "d")
    ds = load_dataset("fashion_mnist", path=tmp_path / "d", channels=3)
    assert ds.train.images.shape == (40, 3, 28, 28)
    for c in range(3):
        assert np.array_equal(ds.train.images[:, c].numpy(), arrays["train-images-idx3-ubyte"])


def test_read_idx_of_other_types_and_shapes():
    values = np.arange(6, dtype=">i4").reshape(2, 3)
    data = struct.pack(">BBBBII", 0, 0, 0x0C, 2, 2, 3) + values.tobytes()
    out = read_idx(data)
    assert out.shape == (2, 3) and out.tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-5], "truncated"),
        (lambda b: b + b"\0", "longer than its header"),
        (lambda b: b"\x01\x02" + b[2:], "not an idx file"),
        (lambda b: b[:6], "truncated idx header"),
        (lambda b: b"", "empty file"),
    ],
)
def test_damaged_idx_files_say_what_is_wrong(tmp_path, damage, message):
    write_release(tmp_path / "d", compress=False)
    target = tmp_path / "d" / "train-images-idx3-ubyte"
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(ValueError, match=message) as err:
        load_dataset("mnist", path=tmp_path / "d")
    assert "train-images-idx3-ubyte" in str(err.value)


def test_truncated_gzip_and_mismatched_labels(tmp_path):
    write_release(tmp_path / "d")
    gz = tmp_path / "d" / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-20])
    with pytest.raises(ValueError, match="not a readable gzip file"):
        load_dataset("fashion_mnist", path=tmp_path / "d")
    write_release(tmp_path / "e")
    labels = tmp_path / "e" / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.zeros(39, np.uint8))))
    with pytest.raises(ValueError, match="expected 40 labels"):
        load_dataset("fashion_mnist", path=tmp_path / "e")
    labels.write_bytes(gzip.compress(idx_bytes(np.full(40, 10, np.uint8))))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\); found 10"):
        load_dataset("fashion_mnist", path=tmp_path / "e")


def test_missing_files_name_what_is_missing_and_how_to_get_them(tmp_path):
    write_release(tmp_path / "d")
    (tmp_path / "d" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", path=tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_dataset("mnist", cache_dir=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_dataset("mnist", path=tmp_path / "nothing")


def test_download_checks_md5_and_fills_the_cache(tmp_path):
    src = tmp_path / "server"
    write_release(src)
    md5 = {s: hashlib.md5((src / f"{s}.gz").read_bytes()).hexdigest() for s in IDX_FILES}
    url = src.as_uri() + "/"
    ds = load_dataset("mnist", download=True, cache_dir=tmp_path / "cache", url=url, md5=md5)
    assert len(ds.train) == 40
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(
        f"{s}.gz" for s in IDX_FILES
    )
    # Later loads read the cache (the server is gone).
    shutil.rmtree(src)
    assert len(load_dataset("mnist", cache_dir=tmp_path / "cache").test) == 20
    # A wrong checksum keeps nothing.
    write_release(src)
    bad = {**md5, "train-images-idx3-ubyte": "0" * 32}
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_dataset("fashion_mnist", download=True, cache_dir=tmp_path / "c2", url=url, md5=bad)
    assert not (tmp_path / "c2" / "fashion_mnist" / "train-images-idx3-ubyte.gz").exists()


def test_train_and_test_subsets_are_stratified(tmp_path):
    write_release(tmp_path / "d", n_train=100, n_test=50)
    ds = load_dataset("mnist", path=tmp_path / "d", train_subset=50, test_subset=20)
    assert ds.train.class_counts() == [5] * 10 and ds.test.class_counts() == [2] * 10
    with pytest.raises(ValueError, match=r"test_subset must be an integer in \[1, 50\]"):
        load_dataset("mnist", path=tmp_path / "d", test_subset=51)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/fashion-mnist is not here")
def test_the_official_fashion_mnist_files():
    ds = load_dataset("fashion_mnist", path=SHARED)
    assert len(ds.train) == 60000 and len(ds.test) == 10000
    assert ds.train.class_counts() == [6000] * 10 and ds.test.class_counts() == [1000] * 10
    # The release's first training labels: ankle boot, T-shirt, T-shirt, dress, ...
    assert ds.train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert ds.mean[0] == pytest.approx(0.2860, abs=1e-4)
