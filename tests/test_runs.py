"""The one run layer (issue 30): a job's directory, and one overwrite policy for
compare, speedrun and reproduce."""

from __future__ import annotations

import json
import shlex

import pytest

from globalpool.cli.main import main
from globalpool.experiment.runs import Job, differing_fields, run_dir, run_or_reuse
from globalpool.train import TrainConfig

# tiny shapes runs: a few seconds each
SMALL = ["--model", "smallgap", "--dataset", "shapes", "--epochs", "1", "--batch-size", "32",
         "--dataset-kwargs", json.dumps({"n_train": 96, "n_test": 32}), "--quiet"]  # fmt: skip


def _config(tmp_path, **kw):
    settings = dict(model="smallgap", dataset="shapes", epochs=1, batch_size=32,
                    dataset_kwargs={"n_train": 96, "n_test": 32}, quiet=True,
                    tensorboard=False, out_dir=str(tmp_path))  # fmt: skip
    return TrainConfig(**{**settings, **kw})


def test_one_seed_trains_that_seed_and_report_only_finds_it(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--heads", "fc,classmap:avg", *SMALL, "--out", str(out)]
    assert main([*args, "--seeds", "7"]) == 0
    for label in ("fc", "classmap-avg"):
        saved = json.loads((run_dir(out, label, 7) / "config.json").read_text())
        assert saved["seed"] == 7
    plan = json.loads((out / "compare.json").read_text())
    assert plan["seeds"] == [7]
    capsys.readouterr()
    # --report-only reads the plan: no --seeds needed, no seed0 looked for
    assert main(["compare", "--report-only", "--heads", "fc,classmap:avg", "--out", str(out)]) == 0
    assert "report:" in capsys.readouterr().out


def test_report_only_after_several_seeds_and_the_explicit_command_replays(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--heads", "fc,classmap:avg", *SMALL, "--out", str(out)]
    assert main([*args, "--seeds", "0", "1", "--cam-methods", "gradcam"]) == 0
    capsys.readouterr()
    assert main(["compare", "--report-only", "--heads", "fc,classmap:avg", "--out", str(out),
                 "--cam-methods", "gradcam"]) == 0  # fmt: skip
    page = (out / "report.html").read_text()
    assert '<section id="seeds">' in page and '<section id="claims">' in page
    # the report's "every setting explicit" command: no --seed, both seeds, the methods
    plan = json.loads((out / "compare.json").read_text())
    explicit = plan["command"].splitlines()[-1]
    assert " --seed " not in explicit and "--seeds 0 1" in explicit
    assert "--cam-methods gradcam" in explicit
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/checkpoints/*.safetensors")}
    argv = shlex.split(explicit)
    assert argv[:2] == ["globalpool", "compare"]
    capsys.readouterr()
    assert main(argv[1:]) == 0
    printed = capsys.readouterr().out
    assert printed.count("already trained in") == 4 and "training smallgap" not in printed
    after = {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/checkpoints/*.safetensors")}
    assert after == stamps and len(stamps) >= 4  # nothing retrained


def test_a_differing_run_is_refused_naming_the_fields_unless_overwrite(tmp_path):
    job = Job.plan(tmp_path, "head", 0, _config(tmp_path))
    summary, reused = run_or_reuse(job)
    assert not reused and summary["epochs"] == 1
    assert run_or_reuse(job)[1] is True  # the same settings: reused
    other = Job.plan(tmp_path, "head", 0, _config(tmp_path, lr=0.01, batch_size=48))
    assert differing_fields(other.path, other.config) == ["batch_size", "lr"]
    with pytest.raises(ValueError, match=r"other settings \(batch_size, lr\).*--overwrite"):
        run_or_reuse(other)
    summary, reused = run_or_reuse(other, overwrite=True)
    assert not reused and summary["config"]["lr"] == 0.01
    # --overwrite trains again even when the settings are the same
    before = (other.path / "summary.json").stat().st_mtime_ns
    assert run_or_reuse(other, overwrite=True)[1] is False
    assert (other.path / "summary.json").stat().st_mtime_ns != before


@pytest.mark.parametrize("verb", ["compare", "speedrun", "reproduce"])
def test_overwrite_is_one_policy_in_every_verb(verb, capsys):
    assert main([verb, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "train every run again, replacing what its directory holds" in text
    assert "one with other settings refused" in text


def test_the_layout_is_one_function():
    assert str(run_dir("out", "fc", 3)) == "out/fc/seed3"
    assert str(run_dir("out", "", 0)) == "out/seed0"
    job = Job.plan("out", "fc", 3, TrainConfig())
    assert job.config.seed == 3 and job.config.out_dir == "out/fc/seed3"
