"""The pretrained models shipped in the package: offline, by name, checksummed, and as
accurate as their cards say on the official test set (where ../shared/data holds it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import globalpool
from globalpool.cli.main import main
from globalpool.data import load_dataset, normalize
from globalpool.pretrained import list_pretrained, pretrained_card, pretrained_path, sha256_of

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = {
    "fashion_mnist": SHARED / "fashion-mnist",
    "cifar10": SHARED / "cifar-10-python.tar.gz",  # the official python-layout release
}


def test_the_shipped_models_are_listed():
    names = list_pretrained()
    assert {
        "fmnist-smallgap-gap", "fmnist-smallgap-gmp", "cifar10-fastnet-gap", "cifar10-fastnet-lse"
    } <= set(names)  # fmt: skip


@pytest.mark.parametrize("name", list_pretrained())
def test_loads_offline_by_name_and_matches_its_checksum(name):
    card = pretrained_card(name)
    assert sha256_of(pretrained_path(name)) == card["sha256"]
    model = globalpool.load(name)
    assert model.classes == card["classes"] and list(model.input_size) == card["input_size"]
    assert sum(p.numel() for p in model.parameters()) == card["params"]
    for key in ("dataset", "command", "test_acc", "data"):
        assert card[key]


@pytest.mark.parametrize("name", list_pretrained())
def test_reproduces_its_card_on_500_official_test_images(name):
    card = pretrained_card(name)
    folder = DATA.get(card["dataset"])
    if folder is None or not folder.exists():
        pytest.skip(f"the official {card['dataset']} test set is not in ../shared/data")
    test = load_dataset(card["dataset"], path=folder).test
    model = globalpool.load(name)
    with torch.no_grad():
        x = normalize(test.images[:500], model.mean, model.std)
        acc = float((model(x).argmax(1) == test.labels[:500]).float().mean())
    assert abs(acc - card["test_acc_first_500"]) <= 0.01


def test_cli_predicts_and_maps_with_a_shipped_name(tmp_path, capsys):
    from PIL import Image

    folder = DATA["fashion_mnist"]
    if not folder.is_dir():
        pytest.skip("the official Fashion-MNIST test set is not in ../shared/data")
    test = load_dataset("fashion_mnist", path=folder).test
    paths = []
    for i in range(8):
        path = tmp_path / f"{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).save(path)
        paths.append(str(path))
    name = "fmnist-smallgap-gap"
    assert main(["predict", "--checkpoint", name, *paths, "--topk", "1", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    predicted = [line["topk"][0]["class"] for line in lines]
    truth = [test.classes[int(k)] for k in test.labels[:8]]
    assert sum(p == t for p, t in zip(predicted, truth, strict=True)) >= 6
    assert main(["cam", "--checkpoint", name, paths[0], "--out", str(tmp_path / "c")]) == 0
    assert main(["models", "--pretrained"]) == 0
    assert name in capsys.readouterr().out


def test_cli_predicts_cifar10_photos_with_a_shipped_name(tmp_path, capsys):
    from PIL import Image

    archive = DATA["cifar10"]
    if not archive.exists():
        pytest.skip("the official CIFAR-10 test set is not in ../shared/data")
    test = load_dataset("cifar10", path=archive).test
    paths = []
    for i in range(10):
        path = tmp_path / f"{i}.png"
        Image.fromarray(test.images[i].permute(1, 2, 0).numpy()).save(path)
        paths.append(str(path))
    predicted = []
    for name in ("cifar10-fastnet-gap", "cifar10-fastnet-lse"):
        assert main(["predict", "--checkpoint", name, *paths, "--topk", "1", "--json"]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        predicted = [line["topk"][0]["class"] for line in lines]
        truth = [test.classes[int(k)] for k in test.labels[:10]]
        # ~89% accurate models: 10 photos, at least 7 right (binomial tail below 1%)
        assert sum(p == t for p, t in zip(predicted, truth, strict=True)) >= 7, name
