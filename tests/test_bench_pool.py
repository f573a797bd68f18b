"""benchmarks/bench_pool.py: the page's table of an ``--against timm`` record."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

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
    assert table.endswith("| 2x3x4x4 | avg | NHWC | view, mean | mean | yes |")  # behind
    times = _bench_pool().timm_table(str(record), times=True)
    cells = "1000.0 / 2000.0 | 1000.0 / 1000.0 | 2000.0 / 1000.0 | 500.0 / 600.0"
    assert f"| 2x3x4x4 | avg | {cells} |" in times


def test_timm_table_marks_each_case_by_the_test_of_its_rounds(tmp_path):
    """A record with rounds: bold only where the test finds globalpool slower, italics
    where it does not separate the two, even below 1.0; the profile lists the slower."""
    record = tmp_path / "r.json"
    rows = [_row("avg", "NCHW", 1.0, 2.0, 1.0, 0.99), _row("avg", "NHWC", 2.0, 1.0, 1.0, 1.1)]
    rows[0].update(fwd_verdict="holds", fwd_p=0.001, fb_verdict="not separated", fb_p=0.4)
    rows[1].update(fwd_verdict="reversed", fwd_p=0.002, fb_verdict="not separated", fb_p=0.7)
    for row in rows:
        row.update(fwd_ops_gp=["view", "mean"], fwd_ops_timm=["mean"],
                   bwd_nodes_gp=["MeanBackward1"], bwd_nodes_timm=["MeanBackward1"])  # fmt: skip
    record.write_text(json.dumps({"repeats": 30, "rows": rows}))
    table = _bench_pool().timm_table(str(record))
    assert "| 2x3x4x4 | avg | 2.00 | _0.99_ | **0.50** | _1.10_ |" in table
    assert ("2 of 4 cases at or above 1.0. Welch's t-test on the log times of each case's "
            "30 rounds (p < 0.05): globalpool faster in 1, slower in 1 (bold), not separated "
            "in 2 (italics).") in table  # fmt: skip
    # the forward behind is profiled; the backward at 0.99 is not separated: no table
    assert table.endswith("| 2x3x4x4 | avg | NHWC | view, mean | mean | yes | 0.50 | 0.002 |")


def test_spread_table_gives_the_median_and_largest_swing_of_the_rounds(tmp_path):
    record = tmp_path / "r.json"
    steady = {"fwd_gp": [1.0, 1.0, 1.0], "fwd_timm": [2.0, 2.0, 2.0],
              "fb_gp": [1.0, 3.0, 3.0], "fb_timm": [1.0, 1.0, 4.0]}  # fmt: skip
    swinging = {key: [v * 1.0 for v in (1, 2, 2)] for key in steady}
    rows = [{"rounds_ms": steady}, {"rounds_ms": swinging}]
    record.write_text(json.dumps({"malloc_keeps_freed_memory": True, "rows": rows}))
    table = _bench_pool().spread_table([str(record)])
    # fwd gp: swings 1 and 2 -> median 1.5, largest 2; f+b gp: 3 and 2 -> 2.5 (3)
    assert table.splitlines()[-1] == (
        "| `r.json` | yes | 1.50 (2.00) | 1.50 (2.00) | 2.50 (3.00) | 1.50 (2.00) |"
    )
    old = tmp_path / "old.json"  # a record from before rounds were kept: one line, exit 2
    old.write_text(json.dumps({"rows": [{"fwd_gp_ms": 1.0}]}))
    assert _bench_pool().main(["--spread-table", str(old)]) == 2


def test_speed_verdict_decides_by_welchs_test_on_log_times():
    verdict = _bench_pool().speed_verdict
    slow, fast = [2.0, 2.1, 1.9, 2.05], [1.0, 1.02, 0.98, 1.01]
    assert verdict(fast, slow)["verdict"] == "holds"  # ours faster
    assert verdict(slow, fast)["verdict"] == "reversed"
    noisy = verdict([1.0, 1.3, 0.9, 1.2], [1.1, 0.95, 1.25, 1.0])
    assert noisy["verdict"] == "not separated" and noisy["p"] > 0.05


def test_against_timm_records_each_cases_rounds_and_test(tmp_path):
    """--against timm --json (a subprocess: --keep-freed-memory sets its malloc): every
    case keeps its rounds of both sides and the verdict of the test on them."""
    import subprocess
    import sys

    path = tmp_path / "r.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_pool.py"), "--against", "timm",
           "--keep-freed-memory", "--shape", "2", "8", "2", "2", "--repeats", "3",
           "--json", str(path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, timeout=300)
    record = json.loads(path.read_text())
    assert record["malloc_keeps_freed_memory"] is True and record["repeats"] == 3
    assert len(record["rows"]) == 14  # 7 pools x 2 layouts
    for row in record["rows"]:
        assert {len(r) for r in row["rounds_ms"].values()} == {3}
        assert row["fwd_gp_ms"] == pytest.approx(min(row["rounds_ms"]["fwd_gp"]))
        assert row["fb_verdict"] in ("holds", "not separated", "reversed")
        assert 0.0 <= row["fwd_p"] <= 1.0


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("name", ["avg", "max", "avgmax", "catavgmax", "lse", "simpool", "map"])
def test_against_timm_pairs_each_pool_with_timms_holding_the_same_weights(name, layout):
    """The pairs --against timm times compute the same function: equal outputs and input
    gradients in float64 (timm's own code is the independent reference here)."""
    import torch

    from globalpool.models.vision_compat import import_timm
    from globalpool.pool import create_pool

    import_timm()
    bench = _bench_pool()
    torch.manual_seed(0)
    n, c, h, w = 3, 16, 5, 4
    kw = {
        "lse": {"r": 10.0, "learn_r": False},
        "simpool": {"channels": c},
        "map": {"channels": c, "num_heads": 4},
    }.get(name, {})
    fmt = "channels_first" if layout == "NCHW" else "channels_last"
    ours = create_pool(name, data_format=fmt, **kw).double()
    if name in ("simpool", "map"):  # away from the initial values: biases, norms not trivial
        with torch.no_grad():
            for p in ours.parameters():
                p.add_(0.3 * torch.randn_like(p))
    theirs, module = bench.timm_pool(name, layout, ours)
    module.double()
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    x = x if layout == "NCHW" else x.permute(0, 2, 3, 1).contiguous()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), theirs(xb)
    torch.testing.assert_close(ya, yb, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ya)
    (ga,), (gb,) = torch.autograd.grad(ya, xa, g), torch.autograd.grad(yb, xb, g)
    torch.testing.assert_close(ga, gb, rtol=1e-9, atol=1e-10)


def test_same_kernels_ignores_views_only():
    same_kernels = _bench_pool().same_kernels
    assert same_kernels(["reshape", "mean"], ["mean"])
    assert same_kernels(["reshape", "mean", "amax", "cat"], ["mean", "amax", "cat"])
    assert not same_kernels(["reshape", "amax", "sub", "exp_", "sum"], ["amax", "sub", "exp"])
    assert not same_kernels(["amax", "mean"], ["mean", "amax"])  # order counts
    # backward nodes: the view's node is no arithmetic, another reduction's is
    assert same_kernels(["MeanBackward1", "ViewBackward0"], ["MeanBackward1"])
    assert not same_kernels(["MeanBackward1"], ["AdaptiveAvgPool2DBackward0"])


def test_benchmarks_page_shows_the_current_records_as_the_tables_print_them():
    """BENCHMARKS.md formats the speed records the guide's operators page reads (against
    timm) and the attention pools' record (against their naive forms), pasting nothing."""
    import re

    bench = _bench_pool()
    page = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    source = (ROOT / "docs" / "gen" / "operators.py").read_text(encoding="utf-8")
    records = re.findall(r'"(benchmarks/results/bench-pool-vs-timm[^"]*\.json)"', source)
    assert len(records) == 2
    for record in records:
        assert bench.timm_table(str(ROOT / record)) in page, record
    family = ROOT / "benchmarks" / "results" / "bench-pool-attention-family-2.json"
    assert bench.naive_table(str(family), ["simpool", "map"]) in page
    costs = json.loads((ROOT / "benchmarks" / "results" / "bench-pool-avg-call-costs.json")
                       .read_text(encoding="utf-8"))  # fmt: skip
    indented = "\n".join("  " + line for line in bench.call_costs_table(costs).splitlines())
    assert indented in page  # inside a list item


def test_call_costs_times_each_layer_of_avgs_call_and_records_the_rounds(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "c.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_pool.py"), "--call-costs",
           "--shape", "2", "8", "2", "2", "--repeats", "3", "--json", str(path)]  # fmt: skip
    printed = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT,
                             timeout=300).stdout  # fmt: skip
    record = json.loads(path.read_text())
    calls = [row["call"] for row in record["rows"]]
    assert calls[0] == "x.mean((1, 2))" and calls[-1] == "timm SelectAdaptivePool2d"
    assert len(calls) == 5 and all(len(r["fb_rounds_ms"]) == 3 for r in record["rows"])
    assert _bench_pool().call_costs_table(record) in printed


def test_naive_table_formats_times_and_ratios(tmp_path):
    record = tmp_path / "r.json"
    rows = [{"shape": [2, 8, 3, 3], "op": "map", "layout": "NCHW", "fwd_ms": 2.0,
             "fwd_naive_ms": 30.0, "fb_ms": 4.0, "fb_naive_ms": 10.0},
            {"shape": [2, 8, 3, 3], "op": "avg", "layout": "NCHW", "fwd_ms": 1.0,
             "fwd_naive_ms": 1.0, "fb_ms": 1.0, "fb_naive_ms": 1.0}]  # fmt: skip
    record.write_text(json.dumps({"rows": rows}))
    table = _bench_pool().naive_table(str(record), ["map"])
    row = "| 2x8x3x3 | map | NCHW | 2.0 | 30.0 | 15.00x | 4.0 | 10.0 | 2.50x |"
    assert table.splitlines()[2:] == [row]
