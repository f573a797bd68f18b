import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading

import numpy as np
import pytest
from PIL import Image

from globalpool.data import load_dataset
from globalpool.data.cifar10 import CIFAR10_CLASSES, RestrictedUnpickler, restricted_loads

PER_BATCH = 6


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING), as the official release was
    written by Python 2's cPickle; read back with encoding="bytes" they become bytes."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin-1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1 (which wrote the release) named the reconstructor numpy.core.multiarray.
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _batches(seed=0):
    """The official dict layout: bytes keys, uint8 (n, 3072) rows of R, G, B planes."""
    rng = np.random.default_rng(seed)
    files = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        files[name] = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, PER_BATCH).tolist(),
            b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(PER_BATCH)],
        }
    files["batches.meta"] = {
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_cases_per_batch": PER_BATCH,
        b"num_vis": 3072,
    }
    return files


def write_release(folder, seed=0):
    """An official-format cifar-10-batches-py folder; returns the source dicts."""
    files = _batches(seed)
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(py2_pickle(content))
    return files


def write_release_archive(path, seed=0):
    src = path.parent / f"src_{seed}" / "cifar-10-batches-py"
    files = write_release(src, seed)
    with tarfile.open(path, "w:gz") as tf:
        tf.add(src, arcname="cifar-10-batches-py")
    return files


def check(ds, files):
    train_x = np.concatenate([files[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    train_y = [y for i in range(1, 6) for y in files[f"data_batch_{i}"][b"labels"]]
    assert ds.name == "cifar10" and ds.classes == list(CIFAR10_CLASSES)
    assert ds.train.images.shape == (5 * PER_BATCH, 3, 32, 32)
    assert ds.test.images.shape == (PER_BATCH, 3, 32, 32)
    assert ds.train.labels.tolist() == train_y
    assert ds.test.labels.tolist() == files["test_batch"][b"labels"]
    # Row layout: 1024 red, then 1024 green, then 1024 blue values, row-major.
    red_00 = train_x[:, 0]
    green_0_1 = train_x[:, 1024 + 1]
    assert np.array_equal(ds.train.images[:, 0, 0, 0].numpy(), red_00)
    assert np.array_equal(ds.train.images[:, 1, 0, 1].numpy(), green_0_1)
    assert np.array_equal(ds.train.images.reshape(-1, 3072).numpy(), train_x)


def test_official_archive_and_folder(tmp_path):
    files = write_release_archive(tmp_path / "cifar-10-python.tar.gz")
    check(load_dataset("cifar10", path=tmp_path / "cifar-10-python.tar.gz"), files)
    check(load_dataset("cifar10", path=tmp_path / "src_0" / "cifar-10-batches-py"), files)
    check(load_dataset("cifar10", path=tmp_path / "src_0"), files)  # the folder above


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_from_file_url_into_cache_then_reuse(tmp_path):
    archive = tmp_path / "served.tar.gz"
    files = write_release_archive(archive)
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match=r"download=True"):
        load_dataset("cifar10", cache_dir=cache)
    ds = load_dataset(
        "cifar10", download=True, cache_dir=cache, url=archive.as_uri(), md5=_md5(archive)
    )
    check(ds, files)
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-python.tar.gz"]
    archive.unlink()  # the second load uses the cached copy
    check(
        load_dataset("cifar10", cache_dir=cache, md5=_md5(cache / "cifar-10-python.tar.gz")), files
    )


def test_checksum_mismatch_keeps_nothing(tmp_path):
    archive = tmp_path / "served.tar.gz"
    write_release_archive(archive)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"checksum mismatch.*expected MD5 0{32}"):
        load_dataset("cifar10", download=True, cache_dir=cache, url=archive.as_uri(), md5="0" * 32)
    assert list(cache.iterdir()) == []


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    claimed_length = 0

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(self.claimed_length))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_download_over_local_http(tmp_path, server):
    archive = tmp_path / "served.tar.gz"
    files = write_release_archive(archive)
    _Handler.body = archive.read_bytes()
    _Handler.claimed_length = len(_Handler.body)
    url = f"http://127.0.0.1:{server.server_port}/cifar-10-python.tar.gz"
    ds = load_dataset(
        "cifar10", download=True, cache_dir=tmp_path / "c", url=url, md5=_md5(archive)
    )
    check(ds, files)


def test_broken_transfer_leaves_no_partial_file(tmp_path, server):
    archive = tmp_path / "served.tar.gz"
    write_release_archive(archive)
    full = archive.read_bytes()
    _Handler.body = full[: len(full) // 2]  # the connection closes half way
    _Handler.claimed_length = len(full)
    url = f"http://127.0.0.1:{server.server_port}/x.tar.gz"
    cache = tmp_path / "c"
    with pytest.raises(ValueError, match=r"could not download"):
        load_dataset("cifar10", download=True, cache_dir=cache, url=url, md5=_md5(archive))
    assert list(cache.iterdir()) == []


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_foreign_globals(tmp_path):
    with pytest.raises(ValueError, match=r"refusing to load global .*system"):
        restricted_loads(pickle.dumps({b"data": _Evil()}), "evil")
    # What the release needs still loads.
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for blob in (py2_pickle({b"data": arr}), pickle.dumps({b"data": arr}, protocol=4)):
        out = RestrictedUnpickler(io.BytesIO(blob), encoding="bytes").load()
        assert np.array_equal(out[b"data"], arr)
    assert b"cnumpy.core.multiarray\n_reconstruct" in py2_pickle(arr)
    # A tampered batch inside a release is reported with its name.
    folder = tmp_path / "cifar-10-batches-py"
    write_release(folder)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil()}))
    with pytest.raises(ValueError, match=r"data_batch_3.*refusing"):
        load_dataset("cifar10", path=folder)


def test_incomplete_release_and_corrupt_archive(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_release(folder)
    (folder / "test_batch").unlink()
    with pytest.raises(ValueError, match=r"missing \['test_batch'\]"):
        load_dataset("cifar10", path=folder)
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08" + b"\0" * 100)
    with pytest.raises(ValueError, match=r"cannot read archive .*cifar-10-python.tar.gz"):
        load_dataset("cifar10", path=bad)
    with pytest.raises(FileNotFoundError, match=r"nowhere"):
        load_dataset("cifar10", path=tmp_path / "nowhere")


def test_image_folder_copy_read_from_archive(tmp_path):
    root = tmp_path / "jpg"
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("test", 1)):
        for cls in CIFAR10_CLASSES[:3]:
            for i in range(n):
                p = root / split / cls / f"{i:04d}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(p)
    archive = tmp_path / "cifar10-jpg.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for split in ("train", "test"):
            tf.add(root / split, arcname=split)
    ds = load_dataset("cifar10", path=archive, cache_dir=tmp_path / "cache")
    assert ds.classes == list(CIFAR10_CLASSES[:3])
    assert ds.train.images.shape == (6, 3, 32, 32) and ds.test.labels.tolist() == [0, 1, 2]
    first = Image.open(root / "train" / "airplane" / "0000.jpg").convert("RGB")
    assert np.array_equal(ds.train.images[0].permute(1, 2, 0).numpy(), np.asarray(first))
