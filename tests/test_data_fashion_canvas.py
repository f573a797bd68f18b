"""The built-in real-image data set: Fashion-MNIST items on a canvas, with true boxes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from globalpool.data import load_dataset
from globalpool.data.fashion_canvas import (
    ITEM,
    ITEMS_FILE,
    ITEMS_SHA256,
    MASK_LEVEL,
    write_items_file,
)

OFFICIAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-mnist"


def test_shipped_items_file_is_the_recorded_one():
    data = ITEMS_FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == ITEMS_SHA256
    assert len(data) < 2_000_000  # the package stays small
    licence = ITEMS_FILE.parent / "LICENSE-fashion-mnist.txt"
    assert "MIT License" in licence.read_text() and "Zalando SE" in licence.read_text()


@pytest.mark.skipif(not OFFICIAL.is_dir(), reason="needs ../shared/data/fashion-mnist")
def test_shipped_items_are_rebuilt_byte_for_byte_from_the_official_files(tmp_path):
    assert write_items_file(OFFICIAL, tmp_path / "items.gz") == ITEMS_SHA256


def test_same_seed_same_tensors_other_seed_other_positions():
    a = load_dataset("fashion_canvas", n_train=200, n_test=100, clutter=3, seed=4)
    b = load_dataset("fashion_canvas", n_train=200, n_test=100, clutter=3, seed=4)
    c = load_dataset("fashion_canvas", n_train=200, n_test=100, clutter=3, seed=5)
    for split in ("train", "test"):
        x, y = getattr(a, split), getattr(b, split)
        assert torch.equal(x.images, y.images) and torch.equal(x.boxes, y.boxes)
        assert torch.equal(x.masks, y.masks) and torch.equal(x.labels, y.labels)
    assert torch.equal(a.train.labels, c.train.labels)  # the items are fixed
    assert not torch.equal(a.train.boxes, c.train.boxes)  # their places are not
    # plain NCHW strides: one-channel images whose strides read as channels-last would
    # send convolutions to other kernels (and change a training's numbers)
    for split in (a.train, a.test):
        assert split.images.stride() == torch.empty(split.images.shape).stride()


def test_item_pixels_boxes_and_masks_agree():
    ds = load_dataset("fashion_canvas", n_train=300, n_test=50, size=48)
    s = ds.train
    assert s.images.shape == (300, 1, 48, 48) and s.images.dtype == torch.uint8
    assert s.class_counts() == [30] * 10  # class-balanced choice
    x0, y0, x1, y1 = s.boxes.unbind(1)
    assert torch.all((x0 >= 0) & (y0 >= 0) & (x1 <= 48) & (y1 <= 48))
    assert torch.all((x1 > x0) & (y1 > y0) & (x1 - x0 <= ITEM) & (y1 - y0 <= ITEM))
    for i in range(0, 300, 37):  # the box is the mask's tight box, computed here by hand
        rows = s.masks[i].any(1).nonzero().flatten()
        cols = s.masks[i].any(0).nonzero().flatten()
        want = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        assert s.boxes[i].tolist() == [float(v) for v in want]
        assert torch.all(s.images[i, 0][s.masks[i]] >= MASK_LEVEL)
    assert float(s.images.float().mean()) > 0  # real pixels, not an empty canvas


def test_shifted_split_uses_positions_the_training_split_never_uses():
    size, room = 40, 40 - ITEM
    seen = load_dataset("fashion_canvas", n_train=600, n_test=300, size=size)
    shifted = load_dataset("fashion_canvas", n_train=600, n_test=300, size=size,
                           test_positions="shifted")  # fmt: skip

    # the item's left edge is where it was pasted: recover it from the shipped pixels
    def left_edges(imageset):
        return imageset.boxes[:, 0]  # the tight box starts at or right of x0

    train_x0_max = room // 2
    assert float(left_edges(seen.train).min()) >= 0
    # each training item's 28-wide frame lies within [0, train_x0_max + 28)
    assert float(seen.train.boxes[:, 2].max()) <= train_x0_max + ITEM
    assert float(seen.test.boxes[:, 2].max()) <= train_x0_max + ITEM
    # every shifted item starts right of the furthest training position
    assert float(shifted.test.boxes[:, 0].min()) >= train_x0_max + 1
    assert torch.equal(shifted.train.images, seen.train.images)  # training split unchanged
    assert torch.equal(shifted.test.labels, seen.test.labels)  # same items, other places
    assert shifted.info["test_x0"] == [train_x0_max + 1, room]
    assert seen.info["train_x0"] == [0, train_x0_max]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 27}, "size must be an integer in [28, 256]"),
        ({"size": 29, "test_positions": "shifted"}, "needs size >= 30"),
        ({"test_positions": "left"}, "test_positions must be 'seen' or 'shifted'"),
        ({"clutter": -1}, "clutter must be an integer in [0, 64]"),
        ({"n_train": 3001}, "n_train must be an integer in [1, 3000]"),
        ({"n_test": 0}, "n_test must be an integer in [1, 1000]"),
    ],
)
def test_bad_options_say_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_dataset("fashion_canvas", **kwargs)


@pytest.mark.skipif(not OFFICIAL.is_dir(), reason="needs ../shared/data/fashion-mnist")
def test_built_from_the_official_files_for_larger_runs():
    ds = load_dataset("fashion_canvas", path=str(OFFICIAL), n_train=5000, n_test=2000)
    assert len(ds.train) == 5000 and len(ds.test) == 2000
    assert ds.train.class_counts() == [500] * 10
    assert ds.info["source"] == str(OFFICIAL)
