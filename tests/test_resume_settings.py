"""A resumed run applies the settings it records, or refuses them with a message."""

from __future__ import annotations

import json

import pytest

from globalpool.cli.main import main
from globalpool.train import TrainConfig, train


def first_run(tmp_path, **kw):
    config = TrainConfig(
        model="smallgap", dataset="digits", dataset_kwargs={"size": 8}, epochs=2,
        batch_size=128, out_dir=str(tmp_path / "run"), quiet=True, tensorboard=False, **kw,
    )  # fmt: skip
    train(config.replace(stop_after_epoch=1))
    return config


def saved_groups(tmp_path):
    doc = json.loads((tmp_path / "run" / "checkpoints" / "last.state.json").read_text())
    return doc["optim_param_groups"], json.loads((tmp_path / "run" / "config.json").read_text())


def test_changed_optimiser_settings_are_applied_and_recorded(tmp_path, capsys):
    first_run(tmp_path, weight_decay=5e-4)
    args = ["train", "--resume", str(tmp_path / "run"), "--momentum", "0.5", "--no-nesterov"]
    assert main([*args, "--weight-decay", "0.1"]) == 0
    err = capsys.readouterr().err
    assert "warning: resuming with changed settings" in err and "momentum: 0.9 -> 0.5" in err
    groups, config = saved_groups(tmp_path)
    assert all(g["momentum"] == 0.5 and g["nesterov"] is False for g in groups)
    # the decayed group takes the new decay; biases stay undecayed
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 0.1]
    assert (config["momentum"], config["weight_decay"]) == (0.5, 0.1)


def test_adam_betas_are_applied(tmp_path):
    base = first_run(tmp_path, optimizer="adamw", lr=1e-3)
    train(base.replace(betas=(0.8, 0.9)), resume=True)
    groups, _ = saved_groups(tmp_path)
    assert all(tuple(g["betas"]) == (0.8, 0.9) for g in groups)


@pytest.mark.parametrize(
    "flag, value", [("--optimizer", "adamw"), ("--batch-size", "64"), ("--seed", "5")]
)
def test_settings_that_make_another_run_are_refused(tmp_path, capsys, flag, value):
    first_run(tmp_path)
    assert main(["train", "--resume", str(tmp_path / "run"), flag, value]) == 2
    err = capsys.readouterr().err
    assert "cannot resume with a different" in err and "new --out" in err
    assert "Traceback" not in err


def test_quiet_runs_still_warn_and_longer_epochs_explain_the_schedule(tmp_path, capsys):
    first_run(tmp_path)
    capsys.readouterr()
    args = ["train", "--resume", str(tmp_path / "run"), "--quiet", "--epochs", "4"]
    assert main([*args, "--label-smoothing", "0.1"]) == 0
    err = capsys.readouterr().err
    assert "label_smoothing: 0.0 -> 0.1" in err
    assert "note: epochs 2 -> 4: the cosine schedule is planned again over 4 epochs" in err
    assert "--schedule constant" in err


@pytest.mark.parametrize("drop", ["rng", "optim_param_groups"])
def test_a_damaged_state_file_says_what_it_lacks(tmp_path, capsys, drop):
    first_run(tmp_path)
    state = tmp_path / "run" / "checkpoints" / "last.state.json"
    doc = json.loads(state.read_text())
    del doc[drop]
    state.write_text(json.dumps(doc))
    assert main(["train", "--resume", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"is damaged (no {drop})" in err and "--overwrite" in err
