"""The speedrun pieces: lookahead averaging, test-time augmentation, the whitening stem,
recipes, ``globalpool speedrun`` end to end, and the airbench adapter of the benchmark."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from globalpool.cli.main import main
from globalpool.experiment.speedrun import (
    aggregate,
    record_commands,
    records_table,
    records_text,
    time_to_target,
)
from globalpool.models.fastnet import FastNet
from globalpool.train import TrainConfig, train
from globalpool.train.checkpoint import read_safetensors
from globalpool.train.lookahead import Lookahead
from globalpool.train.metrics import read_metrics
from globalpool.train.optim import param_groups
from globalpool.train.presets import get_recipe, list_recipes, recipe_for_target
from globalpool.train.tta import tta_logits

ROOT = Path(__file__).resolve().parents[1]
DATA = {"n_train": 240, "n_test": 64, "size": 16}


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------ lookahead
def test_lookahead_matches_a_hand_computed_average():
    model = nn.Linear(3, 1, bias=False)
    total, every, base = 6, 2, 0.5
    la = Lookahead(model, every=every, total_steps=total, base_decay=base)
    avg = model.weight.detach().double().clone()
    rng = np.random.default_rng(0)
    for step in range(total):
        with torch.no_grad():  # stand-in for an optimiser step
            model.weight.add_(torch.from_numpy(rng.normal(size=(1, 3))).float())
        live = model.weight.detach().double().clone()
        la.after_step(step)
        if (step + 1) % every == 0:
            decay = base * ((step + 1) / total) ** 3
            avg = decay * avg + (1 - decay) * live
            torch.testing.assert_close(model.weight.detach().double(), avg, atol=1e-6, rtol=0)
    with torch.no_grad():
        model.weight.add_(1.0)  # a step after the last update is dropped by finish()
    la.finish()
    torch.testing.assert_close(model.weight.detach().double(), avg, atol=1e-6, rtol=0)


def test_lookahead_averages_batchnorm_statistics_and_skips_integers():
    bn = nn.BatchNorm1d(2)
    la = Lookahead(bn, every=1, total_steps=1, base_decay=0.5)
    assert "num_batches_tracked" not in la.average
    assert {"weight", "bias", "running_mean", "running_var"} <= set(la.average)
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        Lookahead(bn, every=0, total_steps=1, base_decay=0.5)
    with pytest.raises(ValueError, match="no lookahead average"):
        la.load_state_tensors({})


# ------------------------------------------------------------------------------ TTA
def test_tta_views_match_hand_made_views():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5)).eval()
    x = torch.randn(2, 3, 8, 8)
    net(x)
    with torch.no_grad():
        plain = net(x)
        mirror = 0.5 * (plain + net(x.flip(-1)))
        padded = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
        up_left = torch.from_numpy(np.ascontiguousarray(padded[:, :, :8, :8]))
        down_right = torch.from_numpy(np.ascontiguousarray(padded[:, :, 2:, 2:]))
        views = [up_left, up_left.flip(-1), down_right, down_right.flip(-1)]
        full = 0.5 * mirror + 0.125 * sum(net(v) for v in views)
        torch.testing.assert_close(tta_logits(net, x, "none"), plain)
        torch.testing.assert_close(tta_logits(net, x, "flip"), mirror)
        torch.testing.assert_close(tta_logits(net, x, "flip-translate"), full)
        cl = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(tta_logits(net, cl, "flip-translate"), full)
    with pytest.raises(ValueError, match="tta mode must be one of none, flip"):
        tta_logits(net, x, "rotate")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        tta_logits(net, x[0], "flip")


# ------------------------------------------------------------------- whitening stem
def test_whitening_stem_whitens_patches_and_is_frozen():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(3, 3))  # correlated channels
    images = np.einsum("ij,njhw->nihw", mixing, rng.normal(size=(200, 3, 12, 12)))
    net = FastNet(widths=(8, 8, 8), stem="whiten")
    net.init_from_data(torch.from_numpy(images).float())
    weight = net[0].weight.detach().double().numpy()
    assert weight.shape == (24, 3, 2, 2) and np.allclose(weight[12:], -weight[:12])
    # Independent check in numpy: the first 12 filters' responses have unit covariance.
    patches = np.stack(
        [images[:, :, i : i + 2, j : j + 2].reshape(200, -1) for i in range(11) for j in range(11)]
    ).reshape(-1, 12)
    responses = patches @ weight[:12].reshape(12, -1).T
    covariance = responses.T @ responses / len(responses)
    assert np.abs(covariance - np.eye(12)).max() < 0.01
    trainable = [p for g in param_groups(net, 5e-4) for p in g["params"]]
    assert all(p is not net[0].weight for p in trainable)
    assert any(p is net[0].bias for p in trainable)
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\) images; got shape \(4, 1"):
        net.init_from_data(torch.zeros(4, 1, 8, 8))
    with pytest.raises(ValueError, match="stem must be 'conv' or 'whiten'"):
        FastNet(stem="pca")


def test_training_initialises_the_stem_from_data(tmp_path):
    cfg = TrainConfig(
        model="fastnet", model_kwargs={"stem": "whiten", "widths": [8, 8, 8]},
        dataset="shapes", dataset_kwargs=DATA, epochs=1, batch_size=32, quiet=True,
        tensorboard=False, device="cpu", out_dir=str(tmp_path / "run"),
    )  # fmt: skip
    train(cfg)
    weights = read_safetensors(tmp_path / "run" / "checkpoints" / "last.safetensors")[0]
    stem = weights["backbone.0.weight"]
    assert stem.abs().sum() > 0 and torch.equal(stem[12:], -stem[:12])


def test_identity_init_makes_convs_pass_their_first_channels_through():
    torch.manual_seed(0)
    net = FastNet(widths=(8, 16, 16), identity_init=True)
    convs = [m for m in list(net)[2:] for m in m.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (24, 8), (8, 8), (8, 16), (16, 16), (16, 16), (16, 16)
    ]  # fmt: skip
    for conv in convs:
        x = torch.randn(2, conv.in_channels, 6, 6)
        y = F.conv2d(x, conv.weight, padding=1)  # independent: plain torch
        n = min(conv.in_channels, conv.out_channels)
        torch.testing.assert_close(y[:, :n], x[:, :n])
        if conv.out_channels > n:  # the rest keep their random filters
            assert conv.weight[n:].abs().sum() > 0 and not torch.allclose(y[:, n:], x[:, :1])
    plain = [m for m in FastNet(widths=(8, 16, 16)).modules() if isinstance(m, nn.Conv2d)][1]
    x = torch.randn(2, 24, 6, 6)
    assert not torch.allclose(F.conv2d(x, plain.weight, padding=1), x[:, :8], atol=0.1)


def test_batch_norm_options_and_a_fixed_scale_through_training(tmp_path):
    net = FastNet(widths=(8, 8, 8), bn_momentum=0.4, bn_eps=1e-12, bn_scale=False)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    assert all(n.momentum == 0.4 and n.eps == 1e-12 and not n.weight.requires_grad for n in norms)
    assert all(n.bias.requires_grad for n in norms)
    for bad, match in (({"bn_momentum": 0.0}, "bn_momentum"), ({"bn_eps": 0.0}, "bn_eps")):
        with pytest.raises(ValueError, match=match):
            FastNet(**bad)
    kwargs = {"widths": [8, 8, 8], "bn_scale": False, "identity_init": True}
    cfg = TrainConfig(
        model="fastnet", model_kwargs=kwargs, dataset="shapes", dataset_kwargs=DATA,
        epochs=1, batch_size=32, quiet=True, tensorboard=False, device="cpu",
        out_dir=str(tmp_path / "run"), bias_lr_scale=16.0, alternate_flip=True,
    )  # fmt: skip
    train(cfg)
    weights = read_safetensors(tmp_path / "run" / "checkpoints" / "last.safetensors")[0]
    scales = [v for k, v in weights.items() if k.endswith("weight") and v.ndim == 1]
    shifts = [v for k, v in weights.items() if k.endswith("bias") and "backbone.2." in k]
    assert len(scales) == 6 and all(torch.equal(v, torch.ones_like(v)) for v in scales)
    assert any(v.abs().sum() > 0 for v in shifts)  # the shifts did train


# ------------------------------------------------------- loop: lookahead, TTA, curve
def _tiny(out_dir, **changes) -> TrainConfig:
    base = TrainConfig(
        model="smallgap", dataset="shapes", dataset_kwargs=DATA, val_fraction=0.2, epochs=3,
        batch_size=32, lr=0.05, out_dir=str(out_dir), quiet=True, tensorboard=False,
        device="cpu", lookahead_every=2, tta="flip", test_curve=True,
    )  # fmt: skip
    return base.replace(**changes)


def test_lookahead_run_resumes_exactly_and_reports_tta_and_clock(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    summary = train(_tiny(full))
    train(_tiny(part, stop_after_epoch=1))
    assert train(_tiny(part), resume=True)["test_acc"] == summary["test_acc"]
    for name in ("last", "best"):
        a = read_safetensors(full / "checkpoints" / f"{name}.safetensors")[0]
        b = read_safetensors(part / "checkpoints" / f"{name}.safetensors")[0]
        assert all(torch.equal(a[k], b[k]) for k in a)
    rows = read_metrics(full / "metrics.jsonl")
    clocks = [r["train_clock_s"] for r in rows]
    assert all(c > 0 for c in clocks) and clocks == sorted(clocks)
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in rows)
    assert rows[-1]["test_acc"] == summary["test_acc"]  # same final weights, same test set
    assert 0.0 <= summary["test_acc_tta"] <= 1.0 and summary["tta"] == "flip"
    assert summary["train_clock_s"] == pytest.approx(clocks[-1])
    assert summary["final_eval_s"] > 0 and summary["final_val_acc_tta"] is not None


def test_without_tta_or_curve_nothing_extra_is_reported(tmp_path):
    summary = train(_tiny(tmp_path / "r", epochs=1, tta="none", test_curve=False))
    assert summary["test_acc_tta"] is None and summary["final_val_acc_tta"] is None
    assert read_metrics(tmp_path / "r" / "metrics.jsonl")[0]["test_acc"] is None


# --------------------------------------------------------------------------- recipes
def test_recipes_validate_and_are_found_by_target():
    assert list_recipes() == ["cifar10-85", "cifar10-90", "cifar10-94"]
    for name in list_recipes():
        recipe = get_recipe(name)
        config = recipe.config()
        assert config.dataset == "cifar10"
        assert config.model == "fastnet" and config.model_kwargs["stem"] == "whiten"
    assert recipe_for_target(85).name == "cifar10-85"
    assert recipe_for_target(0.9).name == "cifar10-90"
    with pytest.raises(ValueError, match="targets: 85, 90, 94"):
        recipe_for_target(99)
    with pytest.raises(ValueError, match="unknown recipe 'x'; known: cifar10-85"):
        get_recipe("x")


def test_time_to_target_and_aggregate():
    rows = [{"train_clock_s": 10.0, "test_acc": 0.5}, {"train_clock_s": 20.0, "test_acc": 0.9}]
    assert time_to_target(rows, 0.85) == 20.0 and time_to_target(rows, 0.95) is None
    seeds = [
        {"test_acc": 0.8, "test_acc_tta": 0.84, "time_to_result_s": 10.0},
        {"test_acc": 0.82, "test_acc_tta": 0.88, "time_to_result_s": 14.0},
    ]
    agg = aggregate(seeds, 0.85)
    assert agg["test_acc_tta"]["mean"] == pytest.approx(0.86)
    assert agg["test_acc_tta"]["std"] == pytest.approx(np.std([0.84, 0.88], ddof=1))
    assert agg["time_to_result_s"]["min"] == 10.0 and agg["seeds_reaching_target"] == 1


# ------------------------------------------------------------------------------ CLI
def test_speedrun_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "sr"
    args = [
        "speedrun", "--target", "85", "--seeds", "0", "1", "--dataset", "shapes",
        "--dataset-kwargs", json.dumps(DATA), "--model-kwargs",
        '{"stem": "whiten", "widths": [8, 8, 8]}', "--epochs", "2", "--batch-size", "32",
        "--device", "cpu", "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "clock" in printed.err + printed.out and "test acc" in printed.err + printed.out
    result = json.loads((out / "speedrun.json").read_text())
    assert result["recipe"] == "cifar10-85" and result["seeds"] == [0, 1]
    summaries = [json.loads((out / f"seed{s}" / "summary.json").read_text()) for s in (0, 1)]
    assert [s["test_acc_tta"] for s in summaries] == [e["test_acc_tta"] for e in result["per_seed"]]
    mean = sum(s["test_acc_tta"] for s in summaries) / 2
    assert result["aggregate"]["test_acc_tta"]["mean"] == pytest.approx(mean)
    for s, entry in zip(summaries, result["per_seed"], strict=True):
        assert entry["time_to_result_s"] == pytest.approx(s["train_clock_s"] + s["final_eval_s"])
        assert s["config"]["pool"] == "lse" and s["config"]["tta"] == "flip-translate"
    assert (out / "accuracy_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["cpu"] and isinstance(result["isa_caps"], dict) and result["torch"]
    assert "| seed | test acc |" in (out / "speedrun.md").read_text()
    # Adding a seed later reuses the finished ones (same settings) and trains the new one.
    before = (out / "seed0" / "summary.json").read_bytes()
    assert main([*args[:4], "0", "1", "2", *args[6:]]) == 0
    printed = capsys.readouterr()
    assert (printed.out + printed.err).count("already trained in") == 2
    assert (out / "seed0" / "summary.json").read_bytes() == before
    assert json.loads((out / "speedrun.json").read_text())["seeds"] == [0, 1, 2]


def test_speedrun_cli_list_and_errors(capsys):
    assert main(["speedrun", "--list"]) == 0
    assert "cifar10-90" in capsys.readouterr().out
    assert main(["speedrun", "--target", "99"]) == 2
    assert "targets: 85, 90, 94" in capsys.readouterr().err
    assert main(["speedrun", "--target", "85", "--seed", "3"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["speedrun"]) == 2
    assert "give --target" in capsys.readouterr().err


def _speedrun_record(accs_tta, accs, times, *, caps=None):
    return {
        "recipe": "cifar10-85", "target": 0.85, "budget_s": 360.0,
        "settings": {"epochs": 6, "amp": "none"}, "cpu": "Some CPU, 2 logical cores",
        "isa_caps": caps or {}, "command": "globalpool speedrun --target 85 --seeds 0 1",
        "per_seed": [{"test_acc_tta": a, "test_acc": b, "time_to_result_s": t}
                     for a, b, t in zip(accs_tta, accs, times, strict=True)],
    }  # fmt: skip


def test_records_table_formats_hand_made_records():
    """Mean ± sample sd and each seed, the time's range, and a seed counted as reaching
    the target only when it is also within the budget (the second one is over it)."""
    record = _speedrun_record([0.9010, 0.8990], [0.88, 0.87], [300.0, 400.0])
    row = records_table([record]).splitlines()[2]
    sd = 100 * np.std([0.9010, 0.8990], ddof=1)
    assert (
        f"90.00 ± {sd:.2f}% (90.10, 89.90)" in row
        and f"87.50 ± {100 * np.std([0.88, 0.87], ddof=1):.2f}%" in row
    )
    assert f"350 ± {np.std([300.0, 400.0], ddof=1):.0f} s (300-400)" in row
    assert (
        row.startswith("| globalpool cifar10-85, 6 epochs, float32 | 2 |") and "| 1 of 2 |" in row
    )
    assert "reaching 85% in 6 min" in records_table([record]).splitlines()[0]
    bench = {
        "airbench": {"device": "cpu", "width_divisor": 4, "runs": [
            {"test_acc_tta": 0.8882, "time_to_result_s": 250.6,
             "curve": [{"train_clock_s": 1.0, "test_acc": 0.5},
                       {"train_clock_s": 2.0, "test_acc": 0.8719}]}]},
        "globalpool": record, "target": 0.85, "budget_s": 360.0,
        "command": "python benchmarks/bench_speedrun.py --globalpool-result X",
    }  # fmt: skip
    lines = records_table([bench]).splitlines()
    airbench = "| airbench94, widths/4, float32 | 1 run | 88.82% | 87.19% (last epoch) | 251 s |"
    assert lines[2] == airbench + " 1 of 1 |"
    assert lines[3] == row
    capped = _speedrun_record([0.9], [0.88], [300.0], caps={"ATEN_CPU_CAPABILITY": "avx2"})
    assert record_commands(capped) == [
        "ATEN_CPU_CAPABILITY=avx2 globalpool speedrun --target 85 --seeds 0 1"
    ]
    bench["globalpool"] = capped
    assert record_commands(bench) == [
        "ATEN_CPU_CAPABILITY=avx2 globalpool speedrun --target 85 --seeds 0 1",
        "ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_speedrun.py --globalpool-result X",
    ]


SPEEDRUN_RECORDS = sorted((ROOT / "benchmarks" / "results" / "speedrun").glob("*.json"))


@pytest.mark.parametrize("record", SPEEDRUN_RECORDS, ids=lambda p: p.stem)
def test_benchmarks_page_shows_each_speedrun_record(record):
    """BENCHMARKS.md formats the speedrun records (CPU, commands, table), pasting nothing."""
    text = records_text([json.loads(record.read_text())])
    assert text in (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"), record.name


# ------------------------------------------------------------------ the benchmarks
FAKE_AIRBENCH = """import torch
hyp = {'opt': {'train_epochs': 9.9,}, 'net': {'widths': {'block1': 64, 'block2': 256,
'block3': 256,}}}
data = torch.load(p, map_location=torch.device(gpu))
self.images = (self.images.half() / 255)
net = net.half().cuda()
accs = torch.tensor([main(run) for run in range(25)])
"""


def test_airbench_adapter_applies_each_change_once():
    bench = _load_script("bench_speedrun")
    cpu = bench.adapt_airbench(FAKE_AIRBENCH, device="cpu", runs=2, divisor=4, threads=2)
    for text in ("range(2)]", "'block1': 16,", "'block2': 64,", "'block3': 64,",
                 "net = net.float()", "map_location='cpu'", "_torch.set_num_threads(2)",
                 "(self.images.float() / 255)"):  # fmt: skip
        assert text in cpu, text
    gpu = bench.adapt_airbench(FAKE_AIRBENCH, device="cuda", runs=3, divisor=1, threads=2)
    assert "half().cuda()" in gpu and "range(3)]" in gpu and "prelude" not in gpu
    with pytest.raises(ValueError, match="does not contain 'for run in range"):
        bench.adapt_airbench("print(1)", device="cuda", runs=1, divisor=1, threads=1)


def test_airbench_log_parser():
    bench = _load_script("bench_speedrun")
    log = """-----
|  run  |  epoch  |  train_loss  |  train_acc  |  val_acc  |  tta_val_acc  |  total_time_seconds  |
|     0  |      0  |  1.4  |  0.6  |   0.47  |          |   6.34  |
|        |      1  |  1.3  |  0.7  |   0.72  |          |   6.57  |
|        |   eval  |  1.3  |  0.7  |   0.72  |   0.75   |   6.60  |
|     1  |      0  |  1.4  |  0.6  |   0.50  |          |   0.24  |
|        |   eval  |  1.4  |  0.6  |   0.50  |   0.52   |   0.30  |
Mean: 0.6"""
    runs = bench.parse_airbench_log(log)
    assert [r["test_acc_tta"] for r in runs] == [0.75, 0.52]
    assert [r["time_to_result_s"] for r in runs] == [6.60, 0.30]
    assert runs[0]["curve"] == [
        {"train_clock_s": 6.34, "test_acc": 0.47},
        {"train_clock_s": 6.57, "test_acc": 0.72},
    ]


def test_tune_recipe_variant_syntax():
    tune = _load_script("tune_recipe")
    assert tune.parse_variant("") == {}
    assert tune.parse_variant('pool=avg; epochs=8;model_kwargs={"widths": [8, 8, 8]}') == {
        "pool": "avg", "epochs": 8, "model_kwargs": {"widths": [8, 8, 8]},
    }  # fmt: skip
    with pytest.raises(ValueError, match="not key=value"):
        tune.parse_variant("pool")


def test_tune_recipe_refuses_a_variant_without_validation(tmp_path):
    tune = _load_script("tune_recipe")
    # cifar10-94's final runs train on all 50,000 images; its variants hold out 10%.
    assert get_recipe("cifar10-94").config().val_fraction == 0
    for name in list_recipes():
        for changes in tune.variant_settings(get_recipe(name), {}, ["", "epochs=3"]):
            assert get_recipe(name).config(**changes).val_fraction == pytest.approx(0.1)
    with pytest.raises(ValueError, match="val_fraction 0: tuning ranks by validation"):
        tune.main(["--recipe", "cifar10-85", "--variants", "epochs=1", "val_fraction=0",
                   "--out", str(tmp_path / "t")])  # fmt: skip
    assert not (tmp_path / "t").exists()  # refused before the first variant trained


def test_conv_stem_is_unchanged_by_init_from_data():
    net = FastNet(widths=(8, 8, 8))
    before = net[0].weight.detach().clone()
    net.init_from_data(torch.randn(4, 3, 16, 16))
    assert torch.equal(before, net[0].weight) and net[0].weight.requires_grad


def test_speedrun_refuses_stop_after_epoch_with_one_line(tmp_path, capsys):
    # It used to train the first epoch, then die with "error: device" (a KeyError).
    code = main(["speedrun", "--target", "85", "--stop-after-epoch", "1",
                 "--out", str(tmp_path / "sr")])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "does not take --stop-after-epoch" in err
    assert not (tmp_path / "sr").exists()


def test_the_recipes_page_command_is_the_94_recipe():
    # docs/recipes.md writes cifar10-94 out as plain `globalpool train` flags: the same
    # training settings, field by field (the page must not drift from the recipe).
    import re
    import shlex

    from globalpool.cli.cmd_train import config_from_args
    from globalpool.cli.main import build_parser

    page = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    block = re.search(r"the same run by hand:\n\n```bash\n(.*?)```", page, re.S).group(1)
    argv = shlex.split(block.replace("\\\n", " "))
    assert argv[:2] == ["globalpool", "train"]
    by_hand = config_from_args(build_parser().parse_args(argv[1:])).to_dict()
    recipe = get_recipe("cifar10-94").config().to_dict()
    reporting = {"out_dir", "dataset_kwargs", "test_curve", "tensorboard"}
    assert {k: v for k, v in by_hand.items() if k not in reporting} == {
        k: v for k, v in recipe.items() if k not in reporting
    }


def test_bench_amp_writes_a_profile_record(tmp_path):
    """bench_amp --json: the timed precisions and one step's top ops, each op's share of the
    step's self CPU time in (0, 1], sorted from the largest."""
    bench = _load_script("bench_amp")
    path = tmp_path / "amp.json"
    argv = ["--recipe", "cifar10-85", "--batch-size", "8", "--rounds", "1", "--steps", "1",
            "--precisions", "float32", "--profile", "3", "--json", str(path)]  # fmt: skip
    assert bench.main(argv) == 0
    record = json.loads(path.read_text())
    assert [r["precision"] for r in record["rows"]] == ["float32"] and record["batch"] == 8
    assert record["rows"][0]["images_per_s"] == pytest.approx(8 / record["rows"][0]["s_per_step"])
    ops = record["profiles"]["float32"]
    assert len(ops) == 3 and all(0 < op["share"] <= 1 and op["calls"] >= 1 for op in ops)
    assert [op["self_cpu_ms"] for op in ops] == sorted(
        (op["self_cpu_ms"] for op in ops), reverse=True
    )
    assert record["machine"] and isinstance(record["isa_caps"], dict)
    table = bench.record_table(record)
    assert f"| float32 | {record['rows'][0]['s_per_step']:.3f} |" in table
    assert all(f"| `{op['op']}` | {op['calls']} |" in table for op in ops)


def test_bench_amp_times_variants_of_the_speed_settings_beside_float32(tmp_path):
    """--variants: each named variant timed and recorded in order, its step time put over
    float32's in the table beside its first step's time."""
    bench = _load_script("bench_amp")
    path = tmp_path / "amp.json"
    argv = ["--recipe", "cifar10-85", "--batch-size", "4", "--rounds", "1", "--steps", "1",
            "--variants", "float32", "float32, NCHW", "--json", str(path)]  # fmt: skip
    assert bench.main(argv) == 0
    record = json.loads(path.read_text())
    rows = {r["precision"]: r for r in record["rows"]}
    assert list(rows) == ["float32", "float32, NCHW"]
    ratio = rows["float32, NCHW"]["s_per_step"] / rows["float32"]["s_per_step"]
    assert f"| {ratio:.2f} | {rows['float32, NCHW']['first_step_s']:.1f} |" in (
        bench.record_table(record)
    )


def test_benchmarks_page_shows_the_amp_profile_records():
    """Each bench_amp record kept in benchmarks/results is shown in BENCHMARKS.md as
    --table prints it."""
    bench = _load_script("bench_amp")
    page = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    records = sorted((ROOT / "benchmarks" / "results").glob("amp-profile-*.json"))
    assert records
    for path in records:
        assert bench.record_table(json.loads(path.read_text())) in page, path.name
