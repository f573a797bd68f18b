"""The README's first command, timed and recorded: ``globalpool compare`` with no arguments.

Runs ``globalpool compare --out OUT`` in a fresh process (as a user would), times its
wall clock, then reads every run's ``evaluation.json`` and writes one JSON record: the
command, the machine (CPU name and flags, and whether AVX2-only was emulated through
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``), the wall time, each head's scores
per seed and the claims' verdicts as the report decides them.

Usage:
    python benchmarks/bench_main_job.py --out runs/main-job \
        --record benchmarks/results/main-job.json
    python benchmarks/bench_main_job.py --avx2 ...   # emulate an AVX2-only CPU
    python benchmarks/bench_main_job.py --table benchmarks/results/main-job-avx2.json

``--table RECORD`` prints a record's tables (per head, mean ± sd over seeds; the claims'
verdicts) as Markdown for BENCHMARKS.md: the page formats the record, never retypes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/main-job", help="compare directory (replaced)")
    parser.add_argument("--record", help="the JSON record to write")
    parser.add_argument("--table", metavar="RECORD", help="print RECORD's tables and exit")
    parser.add_argument(
        "--versus", metavar="HEAD", help="with --table: a column testing MaxBoxAcc against HEAD"
    )
    parser.add_argument(
        "--avx2", action="store_true", help="emulate an AVX2-only CPU (ATen and oneDNN)"
    )
    parser.add_argument(
        "--heads", help="compare other heads on the main job's data and budget (--heads SPECS)"
    )
    args = parser.parse_args(argv)
    if args.table:
        print(record_tables(json.loads(Path(args.table).read_text()), versus=args.versus))
        return 0
    if not args.record:
        parser.error("--record is required (or --table RECORD)")

    from globalpool.analysis.evaluation import evaluate_run
    from globalpool.analysis.report.claims import claim_verdicts
    from globalpool.machine import cpu_flags, cpu_name

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ)
    if args.avx2:
        env.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    command = ["globalpool", "compare", "--out", str(out)]
    if args.heads:
        command += ["--heads", args.heads]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        return proc.returncode
    plan = json.loads((out / "compare.json").read_text())
    heads = [h["label"] for h in plan["heads"]]
    seeds = plan["seeds"]
    evaluations = {h: [evaluate_run(out / h / f"seed{k}") for k in seeds] for h in heads}
    # the claims: the reference pooling head against each FC head, as the report decides
    verdicts = [
        {"claim": v["claim"].title, **{k: v[k] for k in ("pooling_head", "against", "diff",
                                                          "t", "p", "verdict")}}
        for v in claim_verdicts(evaluations)
    ]  # fmt: skip
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma")))
    record = {
        "command": " ".join(command),
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_name(),
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "avx2_emulated": bool(args.avx2),
        "environment": {
            k: env[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in env
        },
        "wall_s": round(wall, 1),
        "base_config": plan["base_config"],
        "seeds": seeds,
        "runs": {
            h: [
                {
                    k: r[k]
                    for k in (
                        "train_acc",
                        "test_acc",
                        "gap",
                        "shifted_acc",
                        "max_box_acc",
                        "max_box_acc_v2",
                        "pxap",
                        "pointing_acc",
                        "cam_method",
                        "params_head",
                    )
                }
                for r in recs
            ]
            for h, recs in evaluations.items()
        },
        "verdicts": verdicts,
        # how MaxBoxAcc was computed (analysis.wsol); records without it: "pixel-edge"
        "localization_convention": "wsolevaluation",
        "cam_curve_interval": evaluations[heads[0]][0]["cam_curve_interval"],
    }
    Path(args.record).parent.mkdir(parents=True, exist_ok=True)
    Path(args.record).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wall {wall:.1f} s on {record['cpu']} (AVX2 emulated: {args.avx2}); "
          f"record: {args.record}")  # fmt: skip
    for v in verdicts:
        p = "–" if v["p"] is None else f"{v['p']:.3g}"
        print(f"{v['claim']:<19} {v['pooling_head']} vs {v['against']}: "
              f"{v['diff']:+.1f}, p = {p}: {v['verdict']}")  # fmt: skip
    return 0


_MAP_NAMES = {"gradcam": "Grad-CAM", "classmap": "class maps", "cam": "CAM"}


def record_tables(record: dict, versus: str | None = None) -> str:
    """The per-head table (mean ± sd over the record's seeds) and the verdicts table;
    ``versus``: a last column with Welch's t-test of each head's MaxBoxAcc against it."""
    from globalpool.analysis.markup import markdown_table
    from globalpool.analysis.stats import ALPHA, mean_sd, welch

    def pct(runs, key):
        mean, sd = mean_sd([100 * r[key] for r in runs])
        return f"{mean:.1f} ± {sd:.1f}"

    # records from before 2026-12-08 hold MaxBoxAcc alone, by globalpool's pixel-edge rules
    full = record.get("localization_convention") == "wsolevaluation"
    keys = ("train_acc", "test_acc", "gap", "shifted_acc", "max_box_acc",
            *(("max_box_acc_v2", "pxap") if full else ()), "pointing_acc")  # fmt: skip
    rows = []
    for head, runs in record["runs"].items():
        rows.append([
            head, f"{runs[0]['params_head']:,}", *(pct(runs, k) for k in keys),
            _MAP_NAMES.get(runs[0]["cam_method"], runs[0]["cam_method"]),
        ])  # fmt: skip
        if versus:
            if head == versus:
                rows[-1].append("–")
                continue
            box = [r["max_box_acc"] for r in runs]
            ref = [r["max_box_acc"] for r in record["runs"][versus]]
            _, p = welch(box, ref)
            side = "higher" if mean_sd(box)[0] > mean_sd(ref)[0] else "lower"
            rows[-1].append(f"p = {p:.2g} ({side})" if p < ALPHA else f"p = {p:.2g}: not separated")
    header = ["head", "head params", "train acc %", "test acc %", "train − test, points",
              "unseen positions %", "MaxBoxAcc %",
              *(["MaxBoxAccV2 %", "PxAP %"] if full else []), "pointing %", "map"]  # fmt: skip
    if versus:
        header.append(f"MaxBoxAcc vs {versus} (Welch)")
    per_head = markdown_table(header, rows)
    lines = per_head.split("\n")  # the head, map and test columns are text
    numbers = len(keys) + 1
    aligns = [":--"] + ["--:"] * numbers + [":--"] * (len(header) - 1 - numbers)
    lines[1] = "|" + "|".join(aligns) + "|"
    per_head = "\n".join(lines)
    if not record["verdicts"]:
        return per_head + f"\n\n(mean ± sd over seeds {', '.join(map(str, record['seeds']))})"
    verdicts = []
    for v in record["verdicts"]:
        p = "–" if v["p"] is None else f"p = {v['p']:.2g}"
        # "against" since 2026-12-08 (the GMP head too); "fc_head" in records before
        against = v.get("against", v.get("fc_head"))
        verdicts.append([v["claim"], f"{v['pooling_head']} vs {against}",
                         f"{v['diff']:+.1f}", p, v["verdict"]])  # fmt: skip
    verdict_table = markdown_table(
        ["claim", "heads", "difference, points", "Welch's t", "verdict"], verdicts, text_cols=2
    ).replace("|--:|\n", "|:--|\n", 1)
    seeds = ", ".join(str(s) for s in record["seeds"])
    return f"{per_head}\n\n(mean ± sd over seeds {seeds})\n\n{verdict_table}"


if __name__ == "__main__":
    sys.exit(main())
