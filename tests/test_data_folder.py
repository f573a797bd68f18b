import os
import tarfile
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from globalpool.atomic import atomic_path
from globalpool.data import load_dataset
from globalpool.data.folder import read_image_folder

CLASSES = ["cat", "dog"]


def _pixels(seed, size=(8, 8)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _write(path, rgb, kind):
    """Save an RGB array as ``kind``; return what a correct RGB decode must give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "png":
        Image.fromarray(rgb).save(path)
        return rgb
    if kind == "grey":
        grey = rgb[..., 0]
        Image.fromarray(grey, mode="L").save(path)
        return np.repeat(grey[..., None], 3, axis=2)
    if kind == "rgba":
        alpha = np.full((*rgb.shape[:2], 1), 128, np.uint8)
        Image.fromarray(np.concatenate([rgb, alpha], axis=2), mode="RGBA").save(path)
        return rgb
    if kind == "palette":
        palette = _pixels(99, (16, 1))[:, 0]  # 16 colours
        index = rgb[..., 0] % 16
        img = Image.fromarray(index, mode="P")
        img.putpalette(palette.flatten().tolist())
        img.save(path)
        return palette[index]
    if kind == "bmp":
        Image.fromarray(rgb).save(path, format="BMP")
        return rgb
    if kind == "webp":
        Image.fromarray(rgb).save(path, format="WEBP", lossless=True)
        return rgb
    raise AssertionError(kind)


KINDS = [("png", "png"), ("grey", "png"), ("rgba", "png"), ("palette", "png"),
         ("bmp", "bmp"), ("webp", "webp")]  # fmt: skip


def make_tree(root, split=True):
    """A train/test (or flat) class tree of mixed formats; returns expected tensors."""
    expected = {"train": [], "test": []}
    seed = 0
    for s in ("train", "test") if split else ("train",):
        for label, cls in enumerate(CLASSES):
            for kind, ext in KINDS:
                seed += 1
                base = root / s if split else root
                rgb = _write(base / cls / f"{kind}_{seed}.{ext}", _pixels(seed), kind)
                expected[s].append((f"{kind}_{seed}.{ext}", label, rgb))
    (root / "README.txt").write_text("not an image")
    out = {}
    for s, items in expected.items():
        # The loader orders files by class, then by name.
        items.sort(key=lambda t: (t[1], t[0]))
        if items:
            out[s] = (
                torch.from_numpy(np.stack([t[2] for t in items]).transpose(0, 3, 1, 2).copy()),
                torch.tensor([t[1] for t in items]),
            )
    return out


def _archive(src, dest):
    if dest.suffix == ".zip":
        with zipfile.ZipFile(dest, "w") as zf:
            for p in sorted(src.rglob("*")):
                zf.write(p, "wrapper/" + p.relative_to(src).as_posix())
    else:
        with tarfile.open(dest, "w:gz" if dest.name.endswith(".gz") else "w") as tf:
            tf.add(src, arcname="wrapper")
    return dest


def test_tree_decodes_every_mode_exactly(tmp_path):
    expected = make_tree(tmp_path / "tree")
    ds = load_dataset("folder", path=tmp_path / "tree", cache_dir=tmp_path / "cache")
    assert ds.classes == CLASSES and ds.name == "tree"
    for s, imageset in (("train", ds.train), ("test", ds.test)):
        images, labels = expected[s]
        assert imageset.images.dtype == torch.uint8
        assert torch.equal(imageset.labels, labels)
        assert torch.equal(imageset.images, images)


@pytest.mark.parametrize("archive", ["tree.tar", "tree.tar.gz", "tree.zip"])
def test_archive_round_trip_equals_folder(tmp_path, archive):
    make_tree(tmp_path / "tree")
    folder = load_dataset("folder", path=tmp_path / "tree", cache=False)
    packed = load_dataset(
        "folder", path=_archive(tmp_path / "tree", tmp_path / archive), cache=False
    )
    assert packed.classes == folder.classes
    assert torch.equal(packed.train.images, folder.train.images)
    assert torch.equal(packed.test.labels, folder.test.labels)
    assert torch.equal(packed.test.images, folder.test.images)


def test_grey_and_resize(tmp_path):
    expected = make_tree(tmp_path / "tree")
    ds = load_dataset("folder", path=tmp_path / "tree", grey=True, size=4, cache=False)
    assert ds.train.images.shape == (len(expected["train"][0]), 1, 4, 4)
    ref = Image.fromarray(expected["train"][0][0].permute(1, 2, 0).numpy()).convert("L")
    ref = np.asarray(ref.resize((4, 4), Image.Resampling.BILINEAR))
    assert np.array_equal(ds.train.images[0, 0].numpy(), ref)


def test_flat_layout_gets_seeded_stratified_test_split(tmp_path):
    make_tree(tmp_path / "flat", split=False)
    a = load_dataset("folder", path=tmp_path / "flat", test_fraction=0.5, seed=1, cache=False)
    b = load_dataset("folder", path=tmp_path / "flat", test_fraction=0.5, seed=1, cache=False)
    assert a.train.class_counts() == [3, 3] and a.test.class_counts() == [3, 3]
    assert torch.equal(a.test.images, b.test.images)


def test_cache_hit_and_invalidation(tmp_path):
    make_tree(tmp_path / "tree")
    cache = tmp_path / "cache"
    first = load_dataset("folder", path=tmp_path / "tree", cache_dir=cache)
    assert first.info["cache_hit"] is False
    second = load_dataset("folder", path=tmp_path / "tree", cache_dir=cache)
    assert second.info["cache_hit"] is True
    assert torch.equal(first.train.images, second.train.images)
    assert first.mean == second.mean and first.std == second.std  # stats from the cache
    assert [p.suffix for p in (cache / "decoded").iterdir()] == [".safetensors"]
    # Change one image: same name, new content and modification time.
    target = tmp_path / "tree" / "train" / "cat" / "png_1.png"
    new = np.zeros((8, 8, 3), np.uint8)
    Image.fromarray(new).save(target)
    os.utime(target, ns=(1, 1))
    third = load_dataset("folder", path=tmp_path / "tree", cache_dir=cache)
    assert third.info["cache_hit"] is False
    assert int(third.train.images.sum()) != int(first.train.images.sum())
    # Options are part of the key: another size is its own entry.
    fourth = load_dataset("folder", path=tmp_path / "tree", size=4, cache_dir=cache)
    assert fourth.info["cache_hit"] is False and fourth.train.images.shape[-1] == 4


def test_env_variable_sets_the_cache_dir(tmp_path, monkeypatch):
    make_tree(tmp_path / "tree")
    monkeypatch.setenv("GLOBALPOOL_CACHE", str(tmp_path / "envcache"))
    load_dataset("folder", path=tmp_path / "tree")
    assert len(list((tmp_path / "envcache" / "decoded").iterdir())) == 1


def test_truncated_images_are_skipped_with_one_warning_or_raise_when_strict(tmp_path):
    make_tree(tmp_path / "tree")
    bad = [tmp_path / "tree" / "train" / "dog" / n for n in ("x1.png", "x2.jpg")]
    Image.fromarray(_pixels(5)).save(bad[0])
    bad[0].write_bytes(bad[0].read_bytes()[:40])  # truncated
    bad[1].write_bytes(b"not a jpeg at all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset("folder", path=tmp_path / "tree", cache=False)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "skipped 2 unreadable image(s) of 26" in messages[0]
    assert "x1.png" in messages[0] and "x2.jpg" in messages[0]
    assert len(ds.train) == 12
    with pytest.raises(ValueError, match=r"x1\.png|x2\.jpg"):
        load_dataset("folder", path=tmp_path / "tree", strict=True, cache=False)


def test_bad_inputs_give_clear_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing"):
        load_dataset("folder", path=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no images found in .*empty"):
        load_dataset("folder", path=tmp_path / "empty")
    make_tree(tmp_path / "tree")
    (tmp_path / "tree" / "train" / "bird").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*train/bird has no images"):
        load_dataset("folder", path=tmp_path / "tree", cache=False)
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.fromarray(_pixels(1)).save(loose / "a.png")
    with pytest.raises(ValueError, match=r"a.png lies directly in"):
        load_dataset("folder", path=loose)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b" + os.urandom(200))
    with pytest.raises(ValueError, match=r"cannot read archive .*broken.tar.gz"):
        load_dataset("folder", path=broken)
    mixed = tmp_path / "mixed"
    Image.fromarray(_pixels(1)).save(_mk(mixed / "a" / "1.png"))
    Image.fromarray(_pixels(2, (6, 9))).save(_mk(mixed / "b" / "2.png"))
    with pytest.raises(ValueError, match=r"pass size="):
        load_dataset("folder", path=mixed, cache=False)
    assert load_dataset("folder", path=mixed, size=5, cache=False).image_size == (5, 5)


def _mk(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_interrupted_write_leaves_nothing(tmp_path):
    final = tmp_path / "out" / "entry.safetensors"
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert list((tmp_path / "out").iterdir()) == []


def test_damaged_cache_file_is_rebuilt(tmp_path):
    make_tree(tmp_path / "tree")
    cache = tmp_path / "cache"
    load_dataset("folder", path=tmp_path / "tree", cache_dir=cache)
    (entry,) = (cache / "decoded").iterdir()
    entry.write_bytes(b"garbage")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        train, _, info = read_image_folder(tmp_path / "tree", cache_dir=cache)
    assert info["cache_hit"] is False and len(train) == 12
    assert read_image_folder(tmp_path / "tree", cache_dir=cache)[2]["cache_hit"] is True


def test_odd_file_names_and_links_name_the_file(tmp_path):
    import os

    import numpy as np
    import pytest
    from PIL import Image

    from globalpool.data import load_dataset

    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "d" / c / f"{i}.png")
    loop = tmp_path / "d" / "a" / "loop.png"
    os.symlink(loop.name, loop)  # points at itself
    with pytest.raises(ValueError, match=r"cannot read .*loop\.png"):
        load_dataset("folder", path=tmp_path / "d", size=8, cache=False)
    loop.unlink()
    bad = os.path.join(os.fsencode(tmp_path / "d" / "b"), b"bad\xff.png")
    with open(bad, "wb") as fh:
        fh.write(b"x")
    with pytest.raises(ValueError, match=r"bad\\xff\.png' is not valid UTF-8"):
        load_dataset("folder", path=tmp_path / "d", size=8, cache=False)
