"""Each TrainConfig setting is documented once, in its declaration; ``--help`` of every
verb that takes the settings and the API reference's table show that text, and what it
says about the schedule holds."""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from globalpool.cli.main import build_parser
from globalpool.train.config import TrainConfig, setting_docs
from globalpool.train.schedule import lr_at

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {"Model", "Fine-tuning", "Data", "Optimisation", "Evaluation", "Speed", "Run"}


def _squash(text: str) -> str:
    # argparse wraps lines at spaces and after hyphens ("warm-" / "up")
    return re.sub(r"-\s+", "-", " ".join(text.split()))


def _subparser(verb: str):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a.choices, dict) and verb in a.choices)
    return sub.choices[verb]


def test_every_field_is_documented_in_its_declaration():
    docs = setting_docs()
    assert list(docs) == [f.name for f in dataclasses.fields(TrainConfig)]
    for name, d in docs.items():
        assert d["group"] in GROUPS, name
        assert len(d["doc"]) > 8, name
        assert d["default"] == getattr(TrainConfig(), name), name


@pytest.mark.parametrize("verb", ["train", "compare", "speedrun"])
def test_help_shows_each_fields_one_documentation(verb):
    docs = setting_docs()
    sub = _subparser(verb)
    shown = {a.dest: a.help for a in sub._actions if a.dest in docs}
    assert set(shown) == set(docs)  # a flag for every field (some hidden by the verb)
    for name, help_text in shown.items():
        if help_text != argparse.SUPPRESS:  # e.g. speedrun's --seed (it takes --seeds)
            assert _squash(docs[name]["doc"]) in _squash(help_text), f"{verb} --{name}"
    assert _squash(docs["schedule"]["doc"]) in _squash(sub.format_help())


def test_api_reference_table_shows_each_fields_documentation(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen" / "settings.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    table = _squash((tmp_path / "settings.md").read_text(encoding="utf-8"))
    for name, d in setting_docs().items():
        assert f"`{name}`" in table and _squash(d["doc"]) in table, name
    assert "<!-- gen: settings/settings.md -->" in (ROOT / "docs/api/train.md").read_text()


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_final_lr_ratio_applies_to_cosine_and_linear_as_documented(schedule):
    assert "cosine and linear" in setting_docs()["final_lr_ratio"]["doc"]
    total = 10_000
    last = lr_at(total - 1, total, lr=1.0, schedule=schedule, final_lr_ratio=0.3)
    assert last == pytest.approx(0.3, abs=1e-3)
