"""End-to-end training runs on small generated shapes: files, reproducibility, resume, NaN."""

from __future__ import annotations

import json
import os

import pytest
import torch

from globalpool.cli.main import main
from globalpool.train import TrainConfig, TrainingDiverged, load_run, train
from globalpool.train.checkpoint import read_safetensors
from globalpool.train.metrics import METRIC_KEYS, read_metrics

SUMMARY_KEYS = {
    "run_dir", "model", "head", "pool", "dataset", "params_total", "params_backbone",
    "params_head", "flops_per_image", "best_val_acc", "final_val_acc", "test_acc",
    "final_train_acc", "gap", "epochs", "wall_time_s", "images_per_s", "device", "config",
}  # fmt: skip
DATA = {"n_train": 240, "n_test": 64, "size": 16}


def tiny(out_dir, **changes) -> TrainConfig:
    """smallgap + class-map head: no batch norm, no dropout, a few ms per batch."""
    base = TrainConfig(
        model="smallgap", dataset="shapes", dataset_kwargs=DATA, val_fraction=0.2,
        epochs=3, batch_size=32, lr=0.05, warmup_epochs=1, out_dir=str(out_dir),
        quiet=True, tensorboard=False, device="cpu",
    )  # fmt: skip
    return base.replace(**changes)


def weights(run_dir, name="last"):
    return read_safetensors(os.path.join(run_dir, "checkpoints", f"{name}.safetensors"))[0]


def assert_same_weights(a, b, exact=True):
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_end_to_end_run_writes_everything(tmp_path):
    run = tmp_path / "run"
    summary = train(tiny(run, epochs=2))
    for name in ("config.json", "model.json", "metrics.jsonl", "metrics.csv", "summary.json"):
        assert (run / name).is_file(), name
    for name in ("last.safetensors", "best.safetensors", "last.state.safetensors",
                 "last.state.json"):  # fmt: skip
        assert (run / "checkpoints" / name).is_file(), name
    assert set(summary) >= SUMMARY_KEYS
    assert json.loads((run / "summary.json").read_text()) == summary
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert set(METRIC_KEYS) <= set(row)
        assert 0 <= row["train_acc"] <= 1 and 0 <= row["val_acc"] <= 1
        assert row["gap"] == pytest.approx(row["train_acc"] - row["val_acc"])
        assert row["images_per_s"] > 0
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].split(",") == list(METRIC_KEYS) and len(csv_lines) == 3
    assert summary["best_val_acc"] == max(r["val_acc"] for r in rows)
    assert summary["params_total"] == summary["params_backbone"] + summary["params_head"]
    assert TrainConfig.load(run / "config.json") == tiny(run, epochs=2)

    # The saved run rebuilds, and its final weights give the reported test accuracy
    # (recomputed here from the raw test images with plain tensor ops).
    from globalpool.data import load_dataset

    model, meta = load_run(run, which="last")
    test = load_dataset("shapes", **DATA).test
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    x = (test.images.float() / 255 - mean) / std
    with torch.no_grad():
        acc = (model(x).argmax(1) == test.labels).float().mean().item()
    assert acc == pytest.approx(summary["test_acc"], abs=1e-6)
    assert meta["classes"] == list(load_dataset("shapes", **DATA).classes)


def test_cli_config_round_trip_reproduces_the_run(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    argv = ["train", "--model", "smallgap", "--dataset", "shapes", "--dataset-kwargs",
            json.dumps(DATA), "--epochs", "2", "--batch-size", "32", "--val-fraction", "0.2",
            "--device", "cpu", "--no-tensorboard", "--quiet", "--out", str(a)]  # fmt: skip
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run_dir"] == str(a)
    # Same config file, another directory: bitwise the same weights and accuracies.
    assert main(["train", "--config", str(a / "config.json"), "--out", str(b)]) == 0
    assert_same_weights(weights(a), weights(b))
    strip = lambda rows: [{k: r[k] for k in ("train_loss", "val_acc")} for r in rows]  # noqa: E731
    assert strip(read_metrics(a / "metrics.jsonl")) == strip(read_metrics(b / "metrics.jsonl"))
    # A run already there is not overwritten by accident.
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_resume_is_exact(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    train(tiny(full, epochs=3))
    stopped = train(tiny(part, epochs=3, stop_after_epoch=1))
    assert stopped == {"run_dir": str(part), "stopped_after_epoch": 1}
    assert not (part / "summary.json").exists()
    assert read_safetensors(part / "checkpoints" / "last.safetensors")[1]["epoch"] == "1"
    # Resume through the CLI, as a user would after the kill.
    assert main(["train", "--resume", str(part), "--quiet"]) == 0
    assert_same_weights(weights(full), weights(part))
    assert_same_weights(weights(full, "best"), weights(part, "best"))
    keys = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
    rows_full = [{k: r[k] for k in keys} for r in read_metrics(full / "metrics.jsonl")]
    rows_part = [{k: r[k] for k in keys} for r in read_metrics(part / "metrics.jsonl")]
    assert rows_full == rows_part
    summary = json.loads((part / "summary.json").read_text())
    assert summary["test_acc"] == json.loads((full / "summary.json").read_text())["test_acc"]


def test_resume_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(tiny(tmp_path / "none"), resume=True)
    with pytest.raises(ValueError, match="already trained 1 epochs of 1"):
        run = tmp_path / "one"
        train(tiny(run, epochs=1))
        train(tiny(run, epochs=1), resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny(run, epochs=3, stop_after_epoch=1))
    before = {
        name: (run / "checkpoints" / name).read_bytes()
        for name in ("last.safetensors", "best.safetensors", "last.state.json")
    }
    with pytest.raises(TrainingDiverged, match=r"NaN or infinite in epoch 2 .*last good "
                       r"checkpoint is .*last.safetensors \(epoch 1\)"):  # fmt: skip
        train(tiny(run, epochs=3, lr=1e30), resume=True)
    for name, data in before.items():
        assert (run / "checkpoints" / name).read_bytes() == data, name
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == [1]
    assert all(torch.isfinite(t).all() for t in weights(run).values())
    # From the CLI: one clear line and exit status 1; nothing saved in the first epoch.
    code = main(["train", "--config", str(run / "config.json"), "--lr", "1e30",
                 "--out", str(tmp_path / "cli")])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and "no checkpoint was saved" in err
    assert not (tmp_path / "cli" / "checkpoints" / "last.safetensors").exists()


def test_val_fraction_0_trains_on_every_image_and_reports_no_validation(tmp_path, capsys):
    # The final run of settings chosen on validation: all 240 images train, nothing
    # pretends to be a validation score, and "best" is simply the last epoch.
    run = tmp_path / "all"
    summary = train(tiny(run, epochs=2, val_fraction=0.0, tta="flip", quiet=False))
    out = capsys.readouterr().out
    assert "240 train / 0 val" in out and "no val" in out and "no validation split" in out
    assert summary["train_images"] == 240 and summary["val_images"] == 0
    for key in ("best_val_acc", "final_val_acc", "final_val_loss", "final_val_acc_tta", "gap"):
        assert summary[key] is None, key
    assert summary["best_epoch"] == 2 and summary["test_acc_tta"] is not None
    rows = read_metrics(run / "metrics.jsonl")
    assert [(r["val_acc"], r["val_loss"], r["gap"]) for r in rows] == [(None, None, None)] * 2
    assert_same_weights(weights(run, "best"), weights(run, "last"))
    # The held-out 20% run trains on fewer images from the same seed's split.
    assert train(tiny(tmp_path / "held", epochs=1))["train_images"] == 192


def test_bad_settings_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        train(tiny(tmp_path / "a", model="resnet9000"))
    with pytest.raises(ValueError, match="batch_size 4096 is larger than the training split"):
        train(tiny(tmp_path / "b", batch_size=4096))
    with pytest.raises(ValueError, match="fp16' needs a CUDA device"):
        train(tiny(tmp_path / "c", amp="fp16"))
    # argparse rejects an unknown choice: exit 2, nothing written
    assert main(["train", "--optimizer", "lion", "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()


def test_other_settings_train(tmp_path):
    """AdamW, one-cycle, bf16 autocast on the CPU, channels-last, clipping, smoothing."""
    run = tmp_path / "run"
    config = tiny(
        run, epochs=2, optimizer="adamw", lr=3e-3, schedule="onecycle", amp="bf16",
        channels_last=True, grad_clip=1.0, label_smoothing=0.1, warmup_epochs=0.5,
        head="pool-linear", pool="gem", head_kwargs={"dropout": 0.2},
    )  # fmt: skip
    summary = train(config)
    rows = read_metrics(run / "metrics.jsonl")
    assert all(r["train_loss"] is not None and r["train_loss"] > 0 for r in rows)
    assert summary["head"] == "pool-linear" and summary["pool"] == "gem"
    assert rows[-1]["lr"] < 3e-3 / 10  # one-cycle ends far below its peak
    # --overwrite starts again: the old summary and checkpoints do not survive.
    (run / "summary.json").write_text("{}")
    train(config.replace(epochs=1, optimizer="sgd", lr=0.05, amp="none"), overwrite=True)
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1
    assert read_safetensors(run / "checkpoints" / "last.safetensors")[1]["epoch"] == "1"


def test_compile_pool_runs_the_pool_compiled_for_the_run_only(tmp_path):
    from globalpool.pool import dispatch, functional

    dispatch._compiled.pop("max", None)
    summary = train(tiny(tmp_path / "run", epochs=1, pool="max", compile_pool=True))
    assert summary["config"]["compile_pool"] is True
    # the evaluation passes (no gradient) ran max's compiled formula
    assert "max" in dispatch._compiled and "max" not in dispatch._failed
    compiled_before = dict(dispatch._compiled)
    with torch.no_grad():  # nothing process-wide was left on: a plain call stays eager
        functional.max_pool(torch.randn(2, 3, 4, 4))
    assert dispatch._compiled == compiled_before
