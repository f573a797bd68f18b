"""``globalpool reproduce``: the claims' table, and each claim's --quick mode end to end
on data written here (idx files, a small CIFAR-10 release) or built in (shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from globalpool.analysis.stats import describe as stats
from globalpool.cli.main import main
from globalpool.data import load_dataset, normalize
from globalpool.deploy import load
from globalpool.experiment.claims import CLAIMS, get_claim
from globalpool.experiment.reproduce import plan_runs, record_header
from test_data_cifar import py2_pickle
from test_data_mnist import write_release as write_idx_release


def write_cifar_release(folder: Path, per_batch=50, n_test=120, seed=0) -> Path:
    """A small official-layout cifar-10-batches-py folder (class-balanced labels)."""
    from globalpool.data.cifar10 import CIFAR10_CLASSES

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    sizes = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": n_test}
    for name, n in sizes.items():
        labels = rng.permutation(np.arange(n) % 10).tolist()
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(py2_pickle({b"labels": labels, b"data": data}))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES]}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return folder


def test_list_shows_every_claim_with_its_published_numbers(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in CLAIMS:
        assert name in out
    for figure in ("87.00", "85.00", "11.59", "10.88", "10.41", "17.56", "43.00", "45.26"):
        assert figure in out
    assert set(CLAIMS) == {
        "article-fmnist", "nin-heads-cifar10", "overfitting-vs-data",
        "overfitting-vs-data-fmnist", "overfitting-vs-data-vgg", "cam-localization",
        "cam-localization-fashion", "cam-localization-cifar",
    }  # fmt: skip
    # each record's protocol, seeds and verdicts (the default --records of a checkout)
    assert "recorded: benchmarks/results/reproduce/article-fmnist.json: protocol full" in out
    assert "heads not trained" in out  # overfitting-vs-data's larger sizes: a fitting claim
    assert "NIN + GAP better than NIN + FC on test error (%): reproduced, p = 1.1e-05" in out
    # article-fmnist is an accuracy under its published schedule: decided whatever the fit
    assert ("GAP class maps better than GMP class maps on test accuracy (%): reproduced, "
            "p = 0.024") in out  # fmt: skip


def test_unknown_claim_and_protocol_are_one_line_errors(capsys):
    assert main(["reproduce", "nope"]) == 2
    assert "unknown claim 'nope'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="has the protocol"):
        plan_runs(get_claim("article-fmnist"), seeds=[0], protocol="cpu")


def test_plan_of_the_article_protocol_is_the_published_one():
    runs = plan_runs(get_claim("article-fmnist"), seeds=[0, 1, 2], data="x")
    assert len(runs) == 9
    config = runs[0]["config"]
    assert (config.model, config.dataset, config.optimizer, config.lr) == (
        "smallgap", "fashion_mnist", "adamw", 3e-4
    )  # fmt: skip
    assert config.epochs == 60 and config.weight_decay == 0 and not config.augment
    assert {(r["config"].head, r["config"].pool) for r in runs} == {
        ("classmap", "avg"), ("classmap", "max"), ("fc", None)
    }  # fmt: skip


def test_nin_cpu_fit_protocol_keeps_nin_with_batch_norm_on_one_subset():
    runs = plan_runs(get_claim("nin-heads-cifar10"), seeds=[0, 1], protocol="cpu-fit")
    assert len(runs) == 3 * 2
    configs = [r["config"] for r in runs]
    assert {c.model for c in configs} == {"nin"}
    assert all(c.model_kwargs == {"norm": True} and c.val_fraction == 0.0 for c in configs)
    # one subset for every run (subset_seed left at its default), no augmentation
    assert {c.dataset_kwargs.get("subset_seed", 0) for c in configs} == {0}
    assert not any(c.augment or c.flip for c in configs)
    assert {(c.head, c.head_kwargs.get("dropout")) for c in configs} == {
        ("fc", 0.0), ("fc", 0.5), ("classmap", None)
    }  # fmt: skip


def test_size_sweep_sees_the_same_number_of_images_per_run():
    runs = plan_runs(get_claim("overfitting-vs-data"), seeds=[0], protocol="cpu")
    epochs = {r["size"]: r["config"].epochs for r in runs}
    assert epochs == {1000: 100, 2000: 50, 5000: 20, 10000: 10}
    assert all(r["config"].dataset_kwargs["train_subset"] == r["size"] for r in runs)


def test_fmnist_size_sweep_and_quick_run(tmp_path):
    runs = plan_runs(get_claim("overfitting-vs-data-fmnist"), seeds=[0], protocol="cpu")
    assert {r["size"]: r["config"].epochs for r in runs} == {
        1000: 300, 2000: 150, 5000: 60, 10000: 30
    }  # fmt: skip
    assert {r["config"].dataset for r in runs} == {"fashion_mnist"}
    write_idx_release(tmp_path / "fm", n_train=700, n_test=350)
    out = tmp_path / "out"
    args = ["reproduce", "overfitting-vs-data-fmnist", "--quick", "--data", str(tmp_path / "fm")]
    assert main([*args, "--out", str(out)]) == 0
    result = json.loads((out / "reproduce.json").read_text())
    assert len(result["runs"]) == 4 * 2 and {e["size"] for e in result["rows"]} == {100, 200}


def _independent_test_accuracy(run_dir: str, dataset: str, **kwargs) -> float:
    model = load(run_dir, which="last")
    data = load_dataset(dataset, **kwargs)
    with torch.no_grad():
        x = normalize(data.test.images, model.mean, model.std)
        return float((model(x).argmax(1) == data.test.labels).float().mean())


def test_article_quick_end_to_end_and_reuse(tmp_path, capsys):
    write_idx_release(tmp_path / "fm", n_train=700, n_test=350)
    out = tmp_path / "out"
    args = ["reproduce", "article-fmnist", "--quick", "--seeds", "0", "1"]
    args += ["--data", str(tmp_path / "fm"), "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "reproduce.json").read_text())
    assert (out / "reproduce.png").stat().st_size > 1000
    md = (out / "reproduce.md").read_text()
    assert "| GAP class maps | 87.00 |" in md and "none published" in md
    # opens as BENCHMARKS.md and the guide open a record: its command, then how it ran
    from globalpool.experiment.reproduce import record_header

    assert record_header(result) in md and "A quick run" in md
    assert md.count("logical cores") == 1  # the device line once, not twice
    assert result["quick"] and result["protocol"] == "full" and len(result["runs"]) == 6
    run = result["runs"][0]
    acc = _independent_test_accuracy(
        run["run_dir"], "fashion_mnist", path=tmp_path / "fm", test_subset=300
    )
    assert run["test_acc"] == pytest.approx(acc, abs=1e-6)
    assert run["gap"] == pytest.approx(run["train_acc"] - run["test_acc"])
    gap_rows = [r for r in result["runs"] if r["row"] == "GAP class maps"]
    values = [100 * r["test_acc"] for r in gap_rows]
    entry = next(e for e in result["rows"] if e["row"] == "GAP class maps")
    assert entry["ours"]["mean"] == pytest.approx(np.mean(values))
    assert entry["ours"]["std"] == pytest.approx(np.std(values, ddof=1))
    assert entry["published"] == 87.0 and entry["seeds"] == [0, 1]
    capsys.readouterr()
    # Finished runs are reused: the second call trains nothing.
    assert main(args) == 0
    assert capsys.readouterr().out.count("already trained in") == 6


def test_cam_localization_quick_scores_every_threshold(tmp_path):
    assert main(["reproduce", "cam-localization", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "reproduce.json").read_text())
    methods = {e["row"]: e["method"] for e in result["rows"]}
    assert methods == {
        "GAP class maps (CAM)": "classmap", "GMP class maps (CAM)": "classmap",
        "FC (Grad-CAM)": "gradcam",
    }  # fmt: skip
    for run in result["runs"]:  # the best of the 1000 thresholds, 0.2 among them
        assert run["convention"] == "wsolevaluation"
        assert 1 >= run["max_box_acc"] >= run["box_acc_at_0.2"] >= 0
        assert run["max_box_acc"] == run["max_box_acc_by_iou"]["0.5"]
        assert 0 <= run["pxap"] <= 1 and 0 <= run["max_box_acc_v2"] <= 1


@pytest.mark.parametrize(
    "name", ["overfitting-vs-data", "nin-heads-cifar10", "cam-localization-cifar"]
)
def test_cifar_claims_quick(tmp_path, name):
    data = write_cifar_release(tmp_path / "cifar-10-batches-py")
    out = tmp_path / "out"
    assert main(["reproduce", name, "--quick", "--data", str(data), "--out", str(out)]) == 0
    result = json.loads((out / "reproduce.json").read_text())
    claim = get_claim(name)
    sizes = claim.train_sizes.get("quick", ()) or (None,)
    assert len(result["runs"]) == len(claim.rows) * len(sizes)
    assert {e["size"] for e in result["rows"]} == set(sizes)
    if name == "cam-localization-cifar":  # boxes of the pasted photos, every threshold
        assert all(run["max_box_acc"] >= run["box_acc_at_0.2"] for run in result["runs"])
    elif name == "nin-heads-cifar10":
        for run, entry in zip(result["runs"], result["rows"], strict=True):
            assert entry["ours"]["mean"] == pytest.approx(100 * (1 - run["test_acc"]))
    else:
        # train accuracy in eval mode on the run's own (subset) training split
        for run in result["runs"]:
            assert run["train_images"] == round(0.9 * run["size"])


def test_stats_of_one_and_several_values():
    assert stats([2.0]) == {"mean": 2.0, "std": 0.0, "min": 2.0, "max": 2.0, "n": 1}
    s = stats([1.0, 2.0, 4.0])
    assert s["mean"] == pytest.approx(7 / 3) and s["std"] == pytest.approx(
        np.std([1, 2, 4], ddof=1)
    )
    assert stats([])["mean"] is None


def _runs(row, accs, train=1.0, size=None):
    return [{"row": row, "size": size, "seed": k, "test_acc": a, "train_acc": train,
             "gap": train - a} for k, a in enumerate(accs)]  # fmt: skip


def test_verdict_rule_on_hand_made_numbers():
    """Welch's t by hand (scipy's formula written out): one ordering separated, one not,
    one with an untrained head (a verdict or none, by the claim), and the error metric's
    direction."""
    import math

    from scipy import stats

    from globalpool.experiment.claims import get_claim
    from globalpool.experiment.reproduce import claim_verdicts

    claim = get_claim("article-fmnist")  # published: GAP 87 > GMP 85 (accuracy)
    gap, gmp = [0.90, 0.91, 0.92], [0.85, 0.86, 0.87]
    (v,) = claim_verdicts(claim, _runs("GAP class maps", gap) + _runs("GMP class maps", gmp))
    a, b = [100 * x for x in gap], [100 * x for x in gmp]
    se = math.sqrt(stats.tvar(a) / 3 + stats.tvar(b) / 3)
    assert v["t"] == pytest.approx((sum(a) - sum(b)) / 3 / se)
    assert v["p"] < 0.05 and v["verdict"] == "reproduced" and v["diff"] == pytest.approx(5.0)

    spread = [0.80, 0.95, 0.88]  # same mean region, wide spread: not separated
    (v,) = claim_verdicts(claim, _runs("GAP class maps", spread) + _runs("GMP class maps", gmp))
    assert v["p"] >= 0.05 and v["verdict"] == "not separated"

    (v,) = claim_verdicts(claim, _runs("GAP class maps", gmp) + _runs("GMP class maps", gap))
    assert v["verdict"] == "reversed"

    # an accuracy under the published schedule: decided whatever the heads fit
    runs = _runs("GAP class maps", gap) + _runs("GMP class maps", gmp, train=0.97)
    (v,) = claim_verdicts(claim, runs)
    assert v["verdict"] == "reproduced" and v["min_train_acc"] == pytest.approx(97.0)
    # a claim about fitting (or trained to convergence when published) needs fitted heads
    fitting = get_claim("nin-heads-cifar10")
    assert fitting.needs_fit and not claim.needs_fit
    runs = (_runs("NIN + GAP", [0.90, 0.91, 0.92], train=0.97)
            + _runs("NIN + FC", [0.80, 0.81, 0.82]))  # fmt: skip
    (v,) = claim_verdicts(fitting, runs)
    assert v["verdict"] == "heads not trained" and v["p"] < 0.05


def test_error_and_gap_orderings_claim_the_lower_score():
    from globalpool.experiment.claims import get_claim
    from globalpool.experiment.reproduce import claim_verdicts

    nin = get_claim("nin-heads-cifar10")  # published errors: GAP < FC + dropout < FC
    runs = (_runs("NIN + GAP", [0.90, 0.91, 0.92]) + _runs("NIN + FC + dropout", [0.85, 0.86, 0.87])
            + _runs("NIN + FC", [0.80, 0.81, 0.82]))  # fmt: skip
    verdicts = claim_verdicts(nin, runs)
    assert [(v["better"], v["worse"]) for v in verdicts] == [
        ("NIN + GAP", "NIN + FC + dropout"), ("NIN + GAP", "NIN + FC"),
        ("NIN + FC + dropout", "NIN + FC"),
    ]  # fmt: skip
    assert all(v["verdict"] == "reproduced" and v["diff"] < 0 for v in verdicts)

    over = get_claim("overfitting-vs-data")  # GAP's train - test gap smaller than FC's
    runs = (_runs("GAP class maps", [0.70, 0.71, 0.72], size=1000)
            + _runs("FC", [0.60, 0.61, 0.62], size=1000)
            + _runs("FC + dropout", [0.70, 0.72, 0.71], size=1000))  # fmt: skip
    by_worse = {v["worse"]: v for v in claim_verdicts(over, runs)}
    assert by_worse["FC"]["verdict"] == "reproduced" and by_worse["FC"]["size"] == 1000
    assert by_worse["FC + dropout"]["verdict"] == "not separated"


RECORDS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "reproduce"


@pytest.mark.parametrize("record", sorted(RECORDS.glob("*.json")), ids=lambda p: p.stem)
def test_benchmarks_page_shows_each_record(record):
    """BENCHMARKS.md formats the records: each one's commands, protocol, CPU and training
    time, its table and its verdicts as the rule gives them, nothing typed by hand."""
    from globalpool.experiment.reproduce import markdown_table, verdicts_table

    result = json.loads(record.read_text())
    page = (record.parents[3] / "BENCHMARKS.md").read_text(encoding="utf-8")
    for part, text in [("commands and protocol line", record_header(result)),
                       ("table", markdown_table(result)),
                       ("verdicts", verdicts_table(result))]:  # fmt: skip
        assert text in page, f"BENCHMARKS.md does not show the {part} of {record.name}"


def test_record_header_names_commands_cpu_and_time():
    result = {"command": "globalpool reproduce x", "protocol": "cpu", "seeds": [0, 1],
              "cpu": "Some CPU, 2 logical cores", "device": "cpu (2 threads)",
              "train_time_s": 1830.0}  # fmt: skip
    assert record_header(result) == (
        "```bash\nglobalpool reproduce x\n```\n\nProtocol **cpu**, seeds 0, 1; Some CPU, 2 "
        "logical cores; cpu (2 threads); 30 min of training in all."
    )
    pieces = record_header({**result, "commands": ["a", "b"]})
    assert pieces.startswith("```bash\n# in pieces: each command reuses the record the one "
                             "before wrote\na\nb\n```")  # fmt: skip


def test_a_protocol_runs_in_pieces_reusing_an_earlier_record(tmp_path, capsys):
    """--reuse-record: runs recorded with the same settings keep their scores (nothing is
    trained for them, even in a fresh --out); new seeds train; other settings train again."""
    data = write_cifar_release(tmp_path / "cifar-10-batches-py")
    base = ["reproduce", "overfitting-vs-data-vgg", "--quick", "--data", str(data)]
    assert main([*base, "--seeds", "0", "--out", str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "reproduce.json").read_text())
    assert all(r["config"]["seed"] == 0 and r["cpu"] for r in first["runs"])
    capsys.readouterr()
    piece = [*base, "--seeds", "0", "1", "--out", str(tmp_path / "b")]
    assert main([*piece, "--reuse-record", str(tmp_path / "a" / "reproduce.json")]) == 0
    said = capsys.readouterr().out
    claim = get_claim("overfitting-vs-data-vgg")
    n = len(claim.rows) * len(claim.train_sizes["quick"])
    assert said.count("reusing its scores") == n and said.count("training vgg_small") == n
    both = json.loads((tmp_path / "b" / "reproduce.json").read_text())
    assert both["seeds"] == [0, 1] and len(both["runs"]) == 2 * n
    seed0 = [r for r in both["runs"] if r["seed"] == 0]
    assert seed0 == first["runs"]  # the recorded scores, as they were
    assert len(both["commands"]) == 2 and "--reuse-record" in both["commands"][1]
    assert not (tmp_path / "b" / "gap-class-maps" / "n100" / "seed0").exists()
    # A record of another claim, or a missing one, is a one-line error (exit 2).
    other = [*base, "--out", str(tmp_path / "c"), "--reuse-record"]
    capsys.readouterr()
    assert main([*other, str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**first, "name": "article-fmnist"}))
    assert main([*other, str(wrong)]) == 2
    assert "records the claim 'article-fmnist'" in capsys.readouterr().err


def test_a_protocol_runs_in_pieces_of_one_head(tmp_path, capsys):
    """--rows trains only the rows named; the record keeps the other rows' recorded runs
    (from --reuse-record) and leaves out rows neither named nor recorded."""
    data = write_cifar_release(tmp_path / "cifar-10-batches-py")
    base = ["reproduce", "nin-heads-cifar10", "--quick", "--data", str(data), "--seeds", "0"]
    out = tmp_path / "nin"
    assert main([*base, "--rows", "nin + gap", "--out", str(out)]) == 0
    first = json.loads((out / "reproduce.json").read_text())
    assert [r["row"] for r in first["runs"]] == ["NIN + GAP"]
    assert first["verdicts"] == []  # no pair of rows yet
    capsys.readouterr()
    record = str(out / "reproduce.json")
    assert main([*base, "--rows", "NIN + FC", "--out", str(out), "--reuse-record", record]) == 0
    said = capsys.readouterr().out
    assert said.count("reusing its scores") == 1 and said.count("left out") == 1
    second = json.loads((out / "reproduce.json").read_text())
    assert sorted(r["row"] for r in second["runs"]) == ["NIN + FC", "NIN + GAP"]
    assert [r for r in second["runs"] if r["row"] == "NIN + GAP"] == first["runs"]
    assert {(v["better"], v["worse"]) for v in second["verdicts"]} == {("NIN + GAP", "NIN + FC")}
    assert len([d for d in out.iterdir() if d.is_dir()]) == 2  # FC + dropout never trained
    # a row the claim does not have is a one-line error (exit 2)
    assert main([*base, "--rows", "NIN + GMP", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "expected row(s) of nin-heads-cifar10" in err and "'NIN + GMP'" in err


def test_a_recorded_run_with_other_settings_is_not_reused():
    from globalpool.experiment.reproduce import _recorded_run

    claim = get_claim("overfitting-vs-data-vgg")
    run = plan_runs(claim, seeds=[0], quick=True)[0]
    recorded = {"row": run["row"], "size": run["size"], "seed": 0,
                "config": json.loads(run["config"].to_json())}  # fmt: skip
    moved = {**recorded, "config": {**recorded["config"], "out_dir": "elsewhere"}}
    assert _recorded_run({"runs": [moved]}, run) is moved
    other_lr = {**recorded, "config": {**recorded["config"], "lr": 0.5}}
    assert _recorded_run({"runs": [other_lr]}, run) is None
    no_config = {k: v for k, v in recorded.items() if k != "config"}
    assert _recorded_run({"runs": [no_config]}, run) is None
