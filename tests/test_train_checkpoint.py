"""Checkpoint IO: safetensors round trip, load_run, and its refusals; optimiser state."""

from __future__ import annotations

import io
import json
import os
import pickle

import pytest
import torch

from globalpool.models import create_model
from globalpool.train.checkpoint import load_run, read_safetensors, save_weights, write_model_json
from globalpool.train.config import TrainConfig
from globalpool.train.train_state import (
    apply_train_state,
    flatten_optimizer_state,
    load_train_state,
    save_train_state,
    unflatten_optimizer_state,
)


def _make_run(path, model_name="smallgap", num_classes=3, **kw):
    torch.manual_seed(0)
    model = create_model(model_name, num_classes, input_size=(16, 16), **kw)
    write_model_json(
        path,
        {
            "model": model_name,
            "model_args": model.model_args,
            "classes": [f"c{i}" for i in range(num_classes)],
            "mean": [0.5],
            "std": [0.25],
            "input_size": [16, 16],
        },
    )
    save_weights(model, os.path.join(path, "checkpoints", "best.safetensors"), {"epoch": 4})
    return model


def test_config_json_round_trip(tmp_path):
    cfg = TrainConfig(
        model="smallgap", head="fc", head_kwargs={"dropout": 0.5}, betas=(0.8, 0.99),
        dataset_kwargs={"n_train": 100}, grad_clip=1.0, amp="bf16", stop_after_epoch=2,
    )  # fmt: skip
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    cfg.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == cfg
    assert json.loads((tmp_path / "c.json").read_text())["betas"] == [0.8, 0.99]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"lr": -1.0}, "lr must be finite and > 0"),
        ({"val_fraction": 0.95}, "val_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"amp": "fp8"}, "amp must be one of"),
        ({"warmup_epochs": 5, "epochs": 2}, "warmup_epochs"),
    ],
)
def test_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes).validate()


def test_config_unknown_key():
    with pytest.raises(ValueError, match=r"unknown training config key.*'lrr'"):
        TrainConfig.from_dict({"lrr": 0.1})


def test_load_run_round_trip(tmp_path):
    model = _make_run(tmp_path)
    loaded, meta = load_run(tmp_path)
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    assert meta["classes"] == ["c0", "c1", "c2"] and meta["epoch"] == 4
    assert not loaded.training
    # A checkpoint path inside the run works too.
    loaded2, _ = load_run(tmp_path / "checkpoints" / "best.safetensors")
    torch.testing.assert_close(loaded2(x), model(x), rtol=0, atol=0)


def test_truncated_checkpoint(tmp_path):
    _make_run(tmp_path)
    path = tmp_path / "checkpoints" / "best.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match=r"truncated: expected \d+ bytes, found \d+"):
        load_run(tmp_path)
    path.write_bytes(data[:20])
    with pytest.raises(ValueError, match="truncated"):
        load_run(tmp_path)


def test_weights_of_another_model(tmp_path):
    _make_run(tmp_path)
    other = create_model("lenet5", 3, in_chans=1, input_size=(16, 16))
    save_weights(other, tmp_path / "checkpoints" / "best.safetensors")
    with pytest.raises(ValueError, match=r"different model: .*missing key"):
        load_run(tmp_path)


def test_shape_mismatch_is_another_model(tmp_path):
    _make_run(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["model_args"]["in_chans"] = 3  # the first conv now expects 3 channels
    meta["mean"], meta["std"] = [0.5] * 3, [0.25] * 3
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"shape mismatch.*checkpoint but"):
        load_run(tmp_path)


def test_wrong_class_count(tmp_path):
    _make_run(tmp_path, num_classes=3)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["model_args"]["num_classes"] = 5
    meta["classes"] = list("abcde")
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="trained for 3 classes but the model has 5"):
        load_run(tmp_path)
    meta["classes"] = list("ab")
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"lists 2 classes but its model_args build .* 5"):
        load_run(tmp_path)


@pytest.mark.parametrize("kind", ["suffix", "pickle-bytes", "torch-zip"])
def test_pickle_refused(tmp_path, kind):
    model = _make_run(tmp_path)
    if kind == "suffix":
        target = tmp_path / "checkpoints" / "model.pt"
        target.write_bytes(b"anything")
        match = r"refusing to load .*model\.pt.*pickle"
    else:
        target = tmp_path / "checkpoints" / "best.safetensors"
        if kind == "pickle-bytes":
            target.write_bytes(pickle.dumps({"weight": [1, 2, 3]}))
            match = "refusing to load .* content is a Python pickle"
        else:
            buf = io.BytesIO()
            torch.save(model.state_dict(), buf)
            target.write_bytes(buf.getvalue())
            match = "refusing to load .*torch.save zip"
    with pytest.raises(ValueError, match=match):
        load_run(target)
    with pytest.raises(ValueError, match=r"not .pt"):
        save_weights(model, tmp_path / "w.pt")


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run directory or checkpoint"):
        load_run(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no checkpoint in run directory"):
        load_run(tmp_path)
    model = create_model("smallgap", 3)
    save_weights(model, tmp_path / "checkpoints" / "last.safetensors")
    with pytest.raises(FileNotFoundError, match=r"model.json"):
        load_run(tmp_path)


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_optimizer_state_round_trip(tmp_path, opt):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))

    def make():
        params = model.parameters()
        if opt == "sgd":
            return torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
        return torch.optim.AdamW(params, lr=0.01)

    optimizer = make()
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 4)).square().mean().backward()
        optimizer.step()
    state = optimizer.state_dict()
    tensors, rest = flatten_optimizer_state(state)
    again = unflatten_optimizer_state(tensors, rest)
    assert again["param_groups"] == state["param_groups"]
    for i, per_param in state["state"].items():
        for name, value in per_param.items():
            torch.testing.assert_close(again["state"][i][name], value, rtol=0, atol=0)

    # Through files, with the RNG: the next random numbers and optimiser steps repeat.
    save_train_state(tmp_path / "s", optimizer=optimizer, extra={"epoch": 3})
    expected = torch.rand(4)
    fresh = make()
    tensors, doc = load_train_state(tmp_path / "s")
    assert doc["epoch"] == 3
    apply_train_state(tensors, doc, optimizer=fresh)
    torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)
    for name, value in state["state"][0].items():
        torch.testing.assert_close(fresh.state_dict()["state"][0][name], value, rtol=0, atol=0)


def test_train_state_epoch_mismatch(tmp_path):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    save_train_state(tmp_path / "s", optimizer=optimizer, extra={"epoch": 3})
    doc = json.loads((tmp_path / "s.json").read_text())
    doc["epoch"] = 4
    (tmp_path / "s.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="do not match"):
        load_train_state(tmp_path / "s")


def test_read_safetensors_not_safetensors(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_safetensors(path)
