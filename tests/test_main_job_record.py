"""The main job's pages format its records: BENCHMARKS.md's tables are what
``bench_main_job.py --table`` prints from the committed JSON, and the record's verdicts
are what the report's statistics give on its own per-seed scores (Welch's t from
scipy, recomputed here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _bench_main_job():
    spec = importlib.util.spec_from_file_location(
        "bench_main_job", ROOT / "benchmarks" / "bench_main_job.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "record, versus",
    [
        ("main-job-avx2.json", None),
        ("main-job-wildcat-avx2.json", "classmap-avg"),
        ("main-job-simpool-avx2.json", "classmap-avg"),
        ("main-job-map-avx2.json", "classmap-avg"),
        ("main-job-isqrtcov-stats-avx2.json", "classmap-avg"),
    ],
)
def test_benchmarks_page_shows_the_record(record, versus):
    tables = _bench_main_job().record_tables(
        json.loads((RESULTS / record).read_text()), versus=versus
    )
    page = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert tables in page, f"BENCHMARKS.md does not show {record} as --table prints it"


def test_record_verdicts_follow_from_its_scores():
    record = json.loads((RESULTS / "main-job-avx2.json").read_text())
    key = {"Overfitting": "gap", "Translation": "shifted_acc", "Localization": "max_box_acc",
           "Accuracy vs GMP": "test_acc", "Localization vs GMP": "max_box_acc"}  # fmt: skip
    for v in record["verdicts"]:
        a = [r[key[v["claim"]]] for r in record["runs"][v["pooling_head"]]]
        b = [r[key[v["claim"]]] for r in record["runs"][v.get("against", v.get("fc_head"))]]
        t, p = stats.ttest_ind(a, b, equal_var=False)
        assert v["p"] == pytest.approx(p, rel=1e-9)
        favours_pooling = (t < 0) if v["claim"] == "Overfitting" else (t > 0)
        expected = ("holds" if favours_pooling else "reversed") if p < 0.05 else "not separated"
        assert v["verdict"] == expected
