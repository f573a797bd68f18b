import numpy as np
import pytest
import torch

from globalpool.data import (
    Dataset,
    ImageSet,
    list_datasets,
    load_dataset,
    train_val_split,
)


def test_registry_names_and_errors():
    assert set(list_datasets()) == {
        "shapes", "digits", "cifar10", "cifar_canvas", "fashion_canvas", "folder", "mnist",
        "fashion_mnist",
    }  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown dataset 'emnist'.*shapes"):
        load_dataset("emnist")
    with pytest.raises(TypeError, match=r"unknown option.*n_images.*n_train"):
        load_dataset("shapes", n_images=5)


def test_digits_values_split_and_upscale():
    from sklearn.datasets import load_digits

    ref = load_digits()
    ds = load_dataset("digits", seed=0)
    assert ds.classes == [str(d) for d in range(10)]
    assert len(ds.train) + len(ds.test) == 1797
    assert ds.train.images.shape[1:] == (1, 8, 8) and ds.train.images.dtype == torch.uint8
    # Every test image is one of the originals, scaled 0..16 -> 0..255.
    scaled = np.round(ref.images * 255 / 16).astype(np.uint8)
    first = ds.test.images[0, 0].numpy()
    hits = np.nonzero((scaled == first).all(axis=(1, 2)))[0]
    assert len(hits) >= 1 and ds.test.labels[0].item() in ref.target[hits]
    counts = np.bincount(ref.target, minlength=10)
    assert ds.test.class_counts() == [round(0.2 * c) for c in counts]
    big = load_dataset("digits", size=32, channels=3, seed=0)
    assert big.train.images.shape[1:] == (3, 32, 32)
    assert torch.equal(big.train.labels, ds.train.labels)
    other = load_dataset("digits", seed=1)
    assert not torch.equal(other.test.labels, ds.test.labels)


def test_train_val_split_is_stratified_disjoint_and_seeded():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    s = ImageSet(torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).repeat(1, 1, 2, 2),
                 labels, ["a", "b", "c"])  # fmt: skip
    train, val = train_val_split(s, 0.1, seed=0)
    assert val.class_counts() == [5, 3, 2] and train.class_counts() == [45, 27, 18]
    ids_t = set(train.images[:, 0, 0, 0].tolist())
    ids_v = set(val.images[:, 0, 0, 0].tolist())
    assert not ids_t & ids_v and len(ids_t | ids_v) == 100
    again, _ = train_val_split(s, 0.1, seed=0)
    other, _ = train_val_split(s, 0.1, seed=1)
    assert torch.equal(again.images, train.images) and not torch.equal(other.images, train.images)
    empty_train, empty_val = train_val_split(s, 0.0, seed=0)
    assert len(empty_train) == 100 and len(empty_val) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        train_val_split(s, 1.5, seed=0)


def test_dataset_mean_std_match_numpy():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (20, 3, 5, 5), dtype=torch.uint8, generator=g)
    images[:, 2] //= 4
    train = ImageSet(images, torch.zeros(20, dtype=torch.int64), ["x"])
    ds = Dataset.from_splits("t", train, train.subset([0, 1]))
    ref = images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(ds.mean, ref.mean(axis=(0, 2, 3)), atol=1e-12)
    np.testing.assert_allclose(ds.std, ref.std(axis=(0, 2, 3)), atol=1e-12)


def test_imageset_validation_messages():
    img = torch.zeros(4, 3, 6, 6, dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"uint8"):
        ImageSet(img.float(), torch.zeros(4), ["a"])
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        ImageSet(img, torch.zeros(3, dtype=torch.int64), ["a"])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\)"):
        ImageSet(img, torch.tensor([0, 0, 1, 0]), ["a"])
    with pytest.raises(ValueError, match=r"boxes"):
        ImageSet(img, torch.zeros(4, dtype=torch.int64), ["a"], boxes=torch.zeros(4, 3))
    s = ImageSet(img, torch.tensor([0, 1, 0, 1]), ["a", "b"], masks=torch.zeros(4, 6, 6).bool())
    sub = s.subset(torch.tensor([True, False, False, True]))
    assert len(sub) == 2 and sub.masks.shape == (2, 6, 6) and sub.labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"out of range"):
        s.subset([7])


def test_train_subset_is_stratified_seeded_and_leaves_test_alone():
    full = load_dataset("shapes", n_train=300, n_test=30, seed=1)
    a = load_dataset("shapes", n_train=300, n_test=30, seed=1, train_subset=90, subset_seed=4)
    b = load_dataset("shapes", n_train=300, n_test=30, seed=1, train_subset=90, subset_seed=4)
    assert len(a.train) == 90
    assert a.train.class_counts() == [30, 30, 30]
    assert torch.equal(a.train.images, b.train.images)
    assert torch.equal(a.test.images, full.test.images)
    # every kept image is one of the full training images
    flat = full.train.images.flatten(1)
    assert all((flat == img.flatten()).all(1).any() for img in a.train.images[:10])


def test_train_subset_out_of_range_names_the_limit():
    with pytest.raises(ValueError, match=r"\[1, 30\]"):
        load_dataset("shapes", n_train=30, n_test=3, train_subset=31)


def test_train_help_names_every_registered_dataset():
    from globalpool.train.config import setting_docs

    named = setting_docs()["dataset"]["doc"].split(":", 1)[1].replace(" or ", ", ").split(",")
    assert {n.strip() for n in named} == set(list_datasets())
