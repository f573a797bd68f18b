"""``cifar_canvas``: CIFAR-10 images pasted on a black canvas; the box is the pasted square."""

from __future__ import annotations

import pytest
import torch

from globalpool.data import load_dataset
from test_reproduce import write_cifar_release


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_cifar_release(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py")


def test_each_image_sits_in_its_box_on_black(release):
    source = load_dataset("cifar10", path=release)
    ds = load_dataset("cifar_canvas", path=release, size=48, n_train=60, n_test=40, seed=1)
    assert ds.train.images.shape == (60, 3, 48, 48) and ds.test.images.shape == (40, 3, 48, 48)
    assert ds.classes == source.classes
    assert ds.train.images.stride() == torch.empty(ds.train.images.shape).stride()
    for part, original in ((ds.train, source.train), (ds.test, source.test)):
        x0, y0, x1, y1 = part.boxes.long().unbind(1)
        assert torch.all((x1 - x0 == 32) & (y1 - y0 == 32))
        assert torch.all(part.masks.sum((1, 2)) == 32 * 32)
        for i in range(len(part.labels)):
            crop = part.images[i, :, y0[i] : y1[i], x0[i] : x1[i]]
            # the pasted square is one of the source images of that class, unchanged
            same = (original.images == crop).flatten(1).all(1)
            assert same.any() and torch.all(original.labels[same] == part.labels[i])
            outside = part.images[i].clone()
            outside[:, y0[i] : y1[i], x0[i] : x1[i]] = 0
            assert outside.max() == 0
            assert part.masks[i, y0[i] : y1[i], x0[i] : x1[i]].all()
    # class-balanced choice, and the same tensors for the same call
    assert ds.train.labels.bincount(minlength=10).tolist() == [6] * 10
    again = load_dataset("cifar_canvas", path=release, size=48, n_train=60, n_test=40, seed=1)
    assert torch.equal(again.train.images, ds.train.images)


def test_shifted_test_positions_are_never_seen_in_training(release):
    ds = load_dataset("cifar_canvas", path=release, size=48, n_train=50, n_test=50,
                      test_positions="shifted")  # fmt: skip
    room = 48 - 32
    assert float(ds.train.boxes[:, 0].max()) <= room // 2
    assert float(ds.test.boxes[:, 0].min()) >= room // 2 + 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 31}, r"size must be an integer in \[32, 256\]"),
        ({"n_train": 0}, r"n_train must be an integer in \[1, 250\]"),
        ({"size": 33, "test_positions": "shifted"}, "needs size >= 34"),
        ({"test_positions": "left"}, "'seen' or 'shifted'"),
    ],
)
def test_bad_arguments_are_one_line_errors(release, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("cifar_canvas", path=release, **kwargs)
