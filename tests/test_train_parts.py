"""Parts of the training package: schedule, optimiser groups, metrics files, progress."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from globalpool.train.config import TrainConfig
from globalpool.train.metrics import METRIC_KEYS, MetricsWriter, read_metrics
from globalpool.train.optim import build_optimizer
from globalpool.train.progress import bars_enabled, progress
from globalpool.train.schedule import lr_at


def test_cosine_matches_torch_cosine_annealing():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.4)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=0.04)
    for step in range(20):
        assert lr_at(step, 20, lr=0.4, final_lr_ratio=0.1) == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-9
        )
        opt.step()
        ref.step()


def test_warmup_and_onecycle_shapes():
    lrs = [lr_at(s, 100, lr=1.0, warmup_steps=10) for s in range(100)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    one = [lr_at(s, 100, lr=1.0, warmup_steps=30, schedule="onecycle") for s in range(100)]
    assert one[0] == pytest.approx(1 / 25) and max(one) == pytest.approx(1.0)
    assert one.index(max(one)) == 30 and one[-1] < 1e-3
    assert lr_at(50, 100, lr=0.3, warmup_steps=5, schedule="constant") == 0.3
    # Beyond the end it stays at the last value (no wrap-around of the cosine).
    assert lr_at(500, 100, lr=1.0) == lr_at(99, 100, lr=1.0)
    with pytest.raises(ValueError, match="schedule must be"):
        lr_at(50, 100, lr=1.0, schedule="step")


def test_weight_decay_groups():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = build_optimizer(model, TrainConfig(weight_decay=0.1, optimizer="adamw"))
    decay, no_decay = opt.param_groups
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3, 3, 3])]
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0
    assert isinstance(opt, torch.optim.AdamW)
    sgd = build_optimizer(model, TrainConfig(decay_norm_and_bias=True))
    assert len(sgd.param_groups[0]["params"]) == 4 and sgd.param_groups[0]["nesterov"]


def test_metrics_files_and_resume_truncation(tmp_path):
    rows = [
        {k: float(e) for k in METRIC_KEYS} | {"epoch": e, "val_loss": math.nan if e == 2 else 1.0}
        for e in (1, 2, 3)
    ]
    with MetricsWriter(tmp_path, tensorboard=False) as writer:
        for row in rows:
            writer.write(row)
            # Written and flushed as each epoch comes, not at the end.
            assert len(read_metrics(tmp_path / "metrics.jsonl")) == row["epoch"]
    got = read_metrics(tmp_path / "metrics.jsonl")
    assert got[1]["val_loss"] is None and got[0]["val_loss"] == 1.0
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == ",".join(METRIC_KEYS) and lines[1].startswith("1,1.0,")
    # Resuming after epoch 2 drops the row of epoch 3 (written after the checkpoint).
    with MetricsWriter(tmp_path, keep_epochs=2, tensorboard=False) as writer:
        writer.write(rows[2] | {"train_loss": 9.0})
    got = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in got] == [1, 2, 3] and got[2]["train_loss"] == 9.0
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 4


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    with MetricsWriter(tmp_path, tensorboard=True) as writer:
        writer.write({"epoch": 1, "train_loss": 0.5, "val_acc": 0.75})
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [s.value for s in events.Scalars("val_acc")] == [0.75]


def test_progress_is_silent_when_not_a_terminal(capsys):
    # pytest captures stderr, so it is not a TTY: no bars, the plain iterable back.
    assert not bars_enabled(quiet=False)
    items = [1, 2, 3]
    assert progress(items, enabled=False) is items
    assert not bars_enabled(quiet=True) and not bars_enabled(False, is_main=False)
    assert capsys.readouterr().err == ""


def test_linear_schedule_is_a_straight_line_after_warmup():
    lrs = [lr_at(s, 110, lr=2.0, warmup_steps=10, schedule="linear", final_lr_ratio=0.1)
           for s in range(110)]  # fmt: skip
    assert lrs[:10] == pytest.approx([2.0 * (s + 1) / 10 for s in range(10)])
    # step 10 + k of the 100 decay steps: 2.0 down toward 0.2 by 1.8 / 100 per step.
    assert lrs[10:] == pytest.approx([2.0 - 1.8 * k / 100 for k in range(100)])
    assert TrainConfig(schedule="linear").validate().schedule == "linear"


def test_bias_lr_scale_groups_keep_the_decay_per_step():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    model[1].weight.requires_grad_(False)  # a frozen BN scale stays out of every group
    config = TrainConfig(lr=0.5, weight_decay=0.01, bias_lr_scale=64.0, decay_norm_and_bias=True)
    opt = build_optimizer(model, config)
    weights, vectors = opt.param_groups
    assert [p.shape for p in weights["params"]] == [torch.Size([4, 3, 3, 3])]
    assert {id(p) for p in vectors["params"]} == {id(model[0].bias), id(model[1].bias)}
    assert (weights["lr"], vectors["lr"]) == (0.5, 32.0)
    # SGD decays a parameter by lr * weight_decay per step: the same for both groups.
    assert vectors["lr"] * vectors["weight_decay"] == pytest.approx(0.5 * 0.01)
    # One step with zero gradients is the decay alone: p <- p * (1 - 0.005) everywhere.
    opt = build_optimizer(model, config.replace(momentum=0.0, nesterov=False))
    before = [p.detach().clone() for p in (model[0].weight, model[0].bias, model[1].bias)]
    with torch.no_grad():
        model[1].bias.fill_(1.0)
    before[2] = model[1].bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    opt.step()
    for old, new in zip(before, (model[0].weight, model[0].bias, model[1].bias), strict=True):
        torch.testing.assert_close(new, old * (1 - 0.005))
    # Without decay_norm_and_bias the faster group is not decayed at all.
    plain = build_optimizer(model, TrainConfig(bias_lr_scale=8.0)).param_groups[1]
    assert plain["weight_decay"] == 0.0 and plain["lr"] == pytest.approx(0.05 * 8)
    with pytest.raises(ValueError, match="bias_lr_scale must be finite and > 0"):
        TrainConfig(bias_lr_scale=0.0).validate()
