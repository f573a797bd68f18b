"""benchmarks/bench_pool.py: the page's table of an ``--against timm`` record."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench_pool():
    path = ROOT / "benchmarks" / "bench_pool.py"
    spec = importlib.util.spec_from_file_location("bench_pool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(op, layout, fwd_gp, fwd_timm, fb_gp, fb_timm):
    return {"shape": [2, 3, 4, 4], "op": op, "layout": layout,
            "fwd_gp_ms": fwd_gp, "fwd_timm_ms": fwd_timm, "fb_gp_ms": fb_gp, "fb_timm_ms": fb_timm,
            "fwd_ratio": fwd_timm / fwd_gp, "fb_ratio": fb_timm / fb_gp}  # fmt: skip


def test_timm_table_formats_the_records_ratios_and_counts_the_cases_behind(tmp_path):
    record = tmp_path / "r.json"
    rows = [_row("avg", "NCHW", 1.0, 2.0, 1.0, 1.0), _row("avg", "NHWC", 2.0, 1.0, 0.5, 0.6)]
    rows[1].update(fwd_ops_gp=["view", "mean"], fwd_ops_timm=["mean"])
    record.write_text(json.dumps({"rows": rows}))
    table = _bench_pool().timm_table(str(record))
    assert "| 2x3x4x4 | avg | 2.00 | 1.00 | **0.50** | 1.20 |" in table
    assert "3 of 4 cases at or above 1.0." in table
    assert table.endswith("| 2x3x4x4 | avg | NHWC | view, mean | mean |")  # the case behind
    times = _bench_pool().timm_table(str(record), times=True)
    cells = "1000.0 / 2000.0 | 1000.0 / 1000.0 | 2000.0 / 1000.0 | 500.0 / 600.0"
    assert f"| 2x3x4x4 | avg | {cells} |" in times
