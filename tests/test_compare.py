"""``globalpool compare``: head specs, the base config from flags, and one tiny real run."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from globalpool.experiment.heads import DEFAULT_HEADS, HeadSpec, parse_head, parse_heads


# ------------------------------------------------------------------ head specs
def test_default_heads_are_the_issue_list():
    specs = parse_heads(None)
    assert [(s.kind, s.pool, s.kwargs) for s in specs] == [
        ("fc", None, {"dropout": 0}),
        ("fc", None, {"dropout": 0.5}),
        ("classmap", "avg", {}),
        ("classmap", "max", {}),
        ("pool-linear", "avg", {}),
    ]
    assert [s.label for s in specs] == [
        "fc-dropout0",
        "fc-dropout0.5",
        "classmap-avg",
        "classmap-max",
        "pool-linear-avg",
    ]
    assert parse_heads(DEFAULT_HEADS) == specs


@pytest.mark.parametrize(
    ("text", "kind", "pool", "kwargs", "label"),
    [
        ("fc", "fc", None, {}, "fc"),
        ("classmap", "classmap", "avg", {}, "classmap-avg"),
        ("pool-linear:gem", "pool-linear", "gem", {}, "pool-linear-gem"),
        ("pool-linear:gem:p=3", "pool-linear", "gem", {"pool_kwargs": {"p": 3}}, None),
        (
            "fc:hidden=[256,128]:dropout=0.25",
            "fc",
            None,
            {"hidden": [256, 128], "dropout": 0.25},
            "fc-hidden256x128-dropout0.25",
        ),
        ("classmap:max:kernel_size=3:label=nin", "classmap", "max", {"kernel_size": 3}, "nin"),
        (" pool-linear : max : dropout = 0.1 ", "pool-linear", "max", {"dropout": 0.1}, None),
    ],
)
def test_parse_head(text, kind, pool, kwargs, label):
    spec = parse_head(text)
    assert (spec.kind, spec.pool, spec.kwargs) == (kind, pool, kwargs)
    if label:
        assert spec.label == label
    assert re.fullmatch(r"[A-Za-z0-9._-]+", spec.label)
    assert parse_head(spec.to_text()) == spec  # round trip


def test_every_registered_pool_is_accepted():
    from globalpool.pool import list_pools

    specs = parse_heads(",".join(f"pool-linear:{p}" for p in list_pools()))
    assert [s.pool for s in specs] == list_pools()
    assert parse_heads(",".join(f"classmap:{p}" for p in list_pools()))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "non-empty"),
        ("mlp", "unknown head kind 'mlp'"),
        ("pool-linear:median", "unknown pool 'median'"),
        ("fc:avg", "takes no pool"),
        ("classmap:avg:max", "two pools"),
        ("fc:kernel_size=3", "not an argument of the 'fc' head"),
        ("classmap:avg:p=3", "not an argument of the 'classmap' head or the 'avg' pool"),
        ("fc:dropout=0.5:dropout=0.1", "given twice"),
        ("fc::dropout=0.5", "empty field"),
        ("fc,fc", "unique"),
        ("classmap:avg,classmap", "unique"),
    ],
)
def test_bad_specs_name_the_problem(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_heads(text)


def test_labels_tell_heads_apart():
    specs = parse_heads(["fc:label=a", HeadSpec("fc", label="b")])
    assert [s.label for s in specs] == ["a", "b"]


# ------------------------------------------------------------------ configuration
def test_head_config_keeps_the_base_and_sets_the_head(tmp_path):
    from globalpool.experiment.compare import default_compare_config, head_config

    base = default_compare_config().replace(lr=0.02, seed=3)
    cfg = head_config(base, parse_head("pool-linear:gem:p=4:dropout=0.2"), tmp_path)
    assert (cfg.head, cfg.pool) == ("pool-linear", "gem")
    assert cfg.head_kwargs == {"dropout": 0.2} and cfg.pool_kwargs == {"p": 4}
    assert cfg.out_dir == str(tmp_path / "pool-linear-gem-dropout0.2-p4")
    same = {
        k: v
        for k, v in cfg.to_dict().items()
        if k not in ("head", "pool", "head_kwargs", "pool_kwargs", "out_dir")
    }
    assert same == {k: v for k, v in base.to_dict().items() if k in same}


def test_cli_flags_override_compare_defaults_and_reject_per_head_flags(tmp_path):
    from globalpool.cli.cmd_compare import base_config_from_args, explicit_command
    from globalpool.cli.main import build_parser
    from globalpool.experiment.compare import COMPARE_DEFAULTS

    parser = build_parser()
    args = parser.parse_args(["compare", "--epochs", "3", "--lr", "0.1", "--out", str(tmp_path)])
    cfg = base_config_from_args(args)
    assert (cfg.epochs, cfg.lr, cfg.out_dir) == (3, 0.1, str(tmp_path))
    assert cfg.dataset_kwargs == COMPARE_DEFAULTS["dataset_kwargs"]
    # The explicit command parses back to the same configuration.
    line = explicit_command(cfg, args.heads)
    again = parser.parse_args(shlex.split(line)[1:])
    assert base_config_from_args(again) == cfg
    assert again.heads == args.heads

    from globalpool.cli.main import main

    assert main(["compare", "--pool", "max", "--out", str(tmp_path)]) == 2
    assert main(["compare", "--heads", "fc:avg", "--out", str(tmp_path)]) == 2


def test_report_only_needs_finished_runs(tmp_path, capsys):
    from globalpool.cli.main import main

    assert main(["compare", "--report-only", "--heads", "fc", "--out", str(tmp_path)]) == 2
    assert "needs finished runs" in capsys.readouterr().err


# ------------------------------------------------------------------ a real comparison
TINY = [
    "--dataset-kwargs",
    json.dumps({"n_train": 96, "n_test": 32}),
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--quiet",
    "--seeds",
    "0",
]


@pytest.mark.slow
def test_tiny_compare_end_to_end(tmp_path, capsys, monkeypatch):
    """Two heads, 1 epoch on tiny shapes data, through the CLI: runs, report, table."""
    from globalpool.cli.main import main

    out = tmp_path / "cmp"
    heads = "fc:dropout=0,classmap:max"
    assert main(["compare", "--heads", heads, "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    for label in ("fc-dropout0", "classmap-max"):
        summary = json.loads((out / label / "seed0" / "summary.json").read_text())
        assert summary["epochs"] == 1 and 0.0 <= summary["test_acc"] <= 1.0
        config = json.loads((out / label / "seed0" / "config.json").read_text())
        assert config["seed"] == 0 and config["epochs"] == 1
    # the terminal ends with the claims over the seeds, then where the report is
    lines = printed.rstrip().splitlines()
    assert lines[-1].startswith("report: ") and lines[-1].endswith("report.md")
    claims = lines[lines.index("The claims, tested over seeds 0 (Welch's t, p < 0.05):") + 1:-1]
    assert claims[0].split() == ["claim", "heads", "scores", "(mean", "±", "sd)", "diff", "p",
                                 "verdict"]  # fmt: skip
    first = {line.split()[0]: line for line in claims[2:]}
    assert set(first) == {"Overfitting", "Translation", "Localization"}
    for line in first.values():  # one seed: described, not tested
        assert " classmap-max vs fc-dropout0 (1 seed) " in line and line.endswith("untested")
    fc = json.loads((out / "fc-dropout0" / "seed0" / "summary.json").read_text())
    cm = json.loads((out / "classmap-max" / "seed0" / "summary.json").read_text())
    assert (fc["head"], cm["head"], cm["pool"]) == ("fc", "classmap", "max")
    assert fc["params_backbone"] == cm["params_backbone"]  # one backbone
    assert fc["params_head"] > cm["params_head"]

    page = (out / "report.html").read_text()
    for section in ("claims", "results", "curves", "gap", "predictions", "cam", "reproduce",
                    "environment"):  # fmt: skip
        assert f'<section id="{section}">' in page
    assert page.index('<section id="claims">') < page.index('<section id="results">')
    assert "Not rendered" not in page and "Partly rendered" not in page
    assert 'id="localization"' in page  # shapes has boxes and masks
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64,', page)) == 5
    assert "--heads fc:dropout=0,classmap:max" in page
    md = (out / "report.md").read_text()
    for name in ("claims", "learning_curves", "gap", "predictions", "cam"):
        assert f"(report_assets/{name}.png)" in md
        assert (out / "report_assets" / f"{name}.png").is_file()

    # Started again (--quiet or not), finished heads are reused, not retrained.
    before = (out / "fc-dropout0" / "seed0" / "summary.json").stat().st_mtime_ns
    rerun = [a for a in TINY if a != "--quiet"]
    assert main(["compare", "--heads", heads, "--out", str(out), *rerun]) == 0
    assert "already trained" in capsys.readouterr().out
    assert (out / "fc-dropout0" / "seed0" / "summary.json").stat().st_mtime_ns == before

    # A head that diverges is reported as such; the others still make the report.
    import globalpool.train
    from globalpool.train import TrainingDiverged

    real_train = globalpool.train.train

    def diverging_train(config, **kw):
        if config.head == "pool-linear":
            raise TrainingDiverged("loss is nan at epoch 1 (injected by the test)")
        return real_train(config, **kw)

    monkeypatch.setattr(globalpool.train, "train", diverging_train)
    assert main(["compare", "--heads", heads + ",pool-linear:max", "--out", str(out), *TINY]) == 1
    err = capsys.readouterr().err
    assert "pool-linear-max (seed 0) diverged" in err
    page = (out / "report.html").read_text()
    assert "pool-linear-max (seed 0) diverged and is left out" in page
    assert page.count('<tr><td class="text">pool-linear-max') == 0

    # The report renders in a browser: every image decodes.
    from browser import render_in_chromium

    dom = render_in_chromium(out / "report.html", tmp_path)
    assert 'data-status="ok"' in dom and 'data-images="5"' in dom


def test_compare_over_seeds_reports_mean_sd_and_whether_seeds_separate_heads(tmp_path, capsys):
    from globalpool.analysis.seeds import seed_rows, verdict
    from globalpool.cli.main import main

    out = tmp_path / "cmp"
    args = [a for a in TINY if a not in ("--seeds", "0")]
    assert main(["compare", "--heads", "fc,classmap:avg", "--out", str(out), *args,
                 "--seeds", "0", "1"]) == 0  # fmt: skip
    runs = {}
    for label in ("fc", "classmap-avg"):
        runs[label] = [json.loads((out / label / f"seed{k}" / "summary.json").read_text())
                       for k in (0, 1)]  # fmt: skip
        assert [s["config"]["seed"] for s in runs[label]] == [0, 1]
    rows = {r["label"]: r for r in seed_rows(runs)}
    tests = [100 * s["test_acc"] for s in runs["fc"]]
    assert rows["fc"]["test_mean"] == pytest.approx(sum(tests) / 2)
    assert rows["fc"]["test_sd"] == pytest.approx(abs(tests[0] - tests[1]) / 2**0.5)
    page = (out / "report.html").read_text()
    import html

    assert '<section id="seeds">' in page and html.escape(verdict(list(rows.values()))) in page
    assert "## Over seeds" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["compare", "--report-only", "--heads", "fc,classmap:avg", "--out", str(out),
                 *args, "--seeds", "0", "1"]) == 0  # fmt: skip
    assert '<section id="seeds">' in (out / "report.html").read_text()


def test_verdict_separates_heads_only_by_welchs_t_at_five_percent():
    from scipy import stats

    from globalpool.analysis.seeds import verdict

    def row(label, tests):
        mean = sum(tests) / len(tests)
        return {"label": label, "test_mean": mean, "n": len(tests), "tests": tests}

    close = verdict([row("a", [80.0, 85.0, 75.0]), row("b", [79.0, 84.0, 74.5])])
    assert "these seeds do not separate them" in close
    clear = verdict([row("a", [90.0, 90.5, 89.5]), row("b", [80.0, 80.5, 79.5])])
    # by hand: equal sd 0.5, n = 3: t = 10 / sqrt(0.25/3 * 2), df = 4
    t = 10 / (0.25 / 3 * 2) ** 0.5
    assert clear.startswith("a leads b by 10.0 points over 3 seeds")
    assert f"t = {t:.2f}, p = {2 * stats.t.sf(t, 4):.3g}" in clear
    assert "from one seed" in verdict([row("a", [90.0]), row("b", [80.0])])


def test_report_scores_cam_methods_on_every_head(tmp_path):
    from globalpool.cli.main import main

    out = tmp_path / "cmp"
    args = ["compare", "--heads", "fc,classmap:avg", "--out", str(out), *TINY]
    assert main([*args, "--cam-methods", "gradcam,hirescam"]) == 0
    md = (out / "report.md").read_text()
    assert md.count("| Head | gradcam | hirescam |") == 2  # localization, faithfulness
    assert md.count("% / ") >= 4  # 2 heads x 2 methods
    assert md.count(" · ") >= 4 and "Faithfulness of the true class's map" in md
    assert main([*args, "--cam-methods", "nope"]) == 2


def test_a_run_written_before_a_new_config_field_counts_as_finished(tmp_path):
    """A field added to TrainConfig later (its default = the old behaviour) must not make
    finished runs look different, or every rerun of compare/reproduce retrains them."""
    from globalpool.experiment.runs import finished_with
    from globalpool.train import TrainConfig

    config = TrainConfig(out_dir=str(tmp_path))
    saved = json.loads(config.to_json())
    del saved["freeze_backbone"], saved["backbone_lr_scale"]  # as written before they existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    (tmp_path / "summary.json").write_text("{}")
    assert finished_with(tmp_path, config)
    assert not finished_with(tmp_path, config.replace(backbone_lr_scale=0.1))
    assert not finished_with(tmp_path, config.replace(lr=0.01))
