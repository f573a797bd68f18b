"""The same heads trained with several seeds: mean ± sd per head, and what the spread
allows one to conclude (a difference counts only where Welch's t-test gives p < 0.05)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from globalpool.analysis.markup import Block, Table, Text, to_html, to_markdown
from globalpool.analysis.stats import ALPHA, mean_sd, welch

__all__ = ["seed_blocks", "seed_rows", "seed_section", "verdict"]


def seed_rows(runs: Mapping[str, Sequence[dict]]) -> list[dict]:
    """One row per head from its runs' summaries (``test_acc``, ``final_train_acc``),
    in percent: test mean/sd/min/max, train mean, gap (train - test) mean/sd, n."""
    rows = []
    for label, summaries in runs.items():
        tests = [100 * s["test_acc"] for s in summaries]
        gaps = [100 * (s["final_train_acc"] - s["test_acc"]) for s in summaries]
        test_mean, test_sd = mean_sd(tests)
        gap_mean, gap_sd = mean_sd(gaps)
        rows.append({
            "label": label, "test_mean": test_mean, "test_sd": test_sd,
            "test_min": min(tests), "test_max": max(tests),
            "train_mean": statistics.fmean(100 * s["final_train_acc"] for s in summaries),
            "gap_mean": gap_mean, "gap_sd": gap_sd, "n": len(summaries), "tests": tests,
        })  # fmt: skip
    return rows


def verdict(rows: Sequence[dict]) -> str:
    """What the seeds allow one to say about the best head against the runner-up."""
    if len(rows) < 2:
        return ""
    first, second = sorted(rows, key=lambda r: r["test_mean"], reverse=True)[:2]
    diff = first["test_mean"] - second["test_mean"]
    if min(first["n"], second["n"]) < 2:
        return (
            f"{first['label']} leads {second['label']} by {diff:.1f} points, from one seed: "
            "no spread to judge the difference by (train with several --seeds)."
        )
    t, p = welch(first["tests"], second["tests"])
    if p < ALPHA:
        return (
            f"{first['label']} leads {second['label']} by {diff:.1f} points over "
            f"{first['n']} seeds: Welch's t = {t:.2f}, p = {p:.3g} (< {ALPHA})."
        )
    return (
        f"{first['label']} and {second['label']} differ by {diff:.1f} points: Welch's "
        f"t = {t:.2f}, p = {p:.3g} (>= {ALPHA}): these seeds do not separate them."
    )


def seed_blocks(runs: Mapping[str, Sequence[dict]]) -> list[Block]:
    """The "Over seeds" section of the report: the table of :func:`seed_rows`, the
    :func:`verdict` and what the columns mean (one description for HTML and Markdown)."""
    rows = seed_rows(runs)
    header = ["head", "test acc % (mean ± sd)", "min-max", "train acc % (mean)",
              "train − test, points (mean ± sd)", "seeds"]  # fmt: skip
    cells = [
        [r["label"], f"{r['test_mean']:.1f} ± {r['test_sd']:.1f}",
         f"{r['test_min']:.1f}-{r['test_max']:.1f}", f"{r['train_mean']:.1f}",
         f"{r['gap_mean']:+.1f} ± {r['gap_sd']:.1f}", str(r["n"])]
        for r in rows
    ]  # fmt: skip
    explain = (
        "Each head trained once per seed (initialisation, data order, augmentation); train "
        "accuracy is the running accuracy of the last epoch (with dropout and augmentation "
        "on), so a negative gap means an underfit head, not a better one."
    )
    return [
        Table(header, cells, table_id="seeds", text_cols=1),
        Text(verdict(rows), "strong"),
        Text(explain, "meta"),
    ]


def seed_section(runs: Mapping[str, Sequence[dict]]) -> tuple[str, str]:
    """The "Over seeds" section of the report as (HTML, Markdown)."""
    blocks = seed_blocks(runs)
    return to_html(blocks), to_markdown(blocks)
