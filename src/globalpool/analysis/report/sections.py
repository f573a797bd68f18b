"""The report's sections read from the run files alone, each said once as a
:class:`~globalpool.analysis.markup.Section` that the page renders to both HTML and
Markdown. (The sections that load the models are in
:mod:`globalpool.analysis.report.model_views`.)"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from globalpool.analysis.markup import Bullets, Code, Figure, Section, Table, Text
from globalpool.analysis.report.environment import environment_info
from globalpool.analysis.report.figures import gap_figure, learning_curves_figure, png_bytes
from globalpool.analysis.report.records import (
    RunRecord,
    config_split,
    flatten,
    highlights,
    results_table,
)
from globalpool.analysis.report.tables import results_cells
from globalpool.analysis.seeds import seed_blocks

__all__ = [
    "curves_section",
    "environment_section",
    "gap_section",
    "reproduce_section",
    "results_section",
    "seeds_section",
]


def results_section(records: Sequence[RunRecord]) -> Section:
    """The results table (best test accuracy marked), what its columns mean, highlights."""
    rows = results_table(records)
    header, cells = results_cells(rows)
    tests = [r["test_acc"] for r in rows if r.get("test_acc") is not None]
    best = max(tests) if tests else None
    marks = ["best" if best is not None and r.get("test_acc") == best else "" for r in rows]
    explain = (
        "Gap = final train accuracy − final validation accuracy, in percentage points; a "
        "large gap means the head memorises the training set. FLOPs are per image at the "
        "training size. *Wall time and images/s depend on what else the machine ran at the "
        "time; compare heads by them only when the runs shared a quiet machine."
    )
    table = Table(header, cells, table_id="results", text_cols=2, marks=marks,
                  legend="Green row: highest test accuracy.")  # fmt: skip
    return Section("results", "Results", [table, Text(explain, "meta"), Bullets(highlights(rows))])


def curves_section(records: Sequence[RunRecord]) -> Section:
    """Train and validation accuracy and loss per epoch, one column per head."""
    caption = (
        "Train and validation accuracy (top) and loss (bottom) per epoch; one column per "
        "head, axes shared along each row."
    )
    png = png_bytes(learning_curves_figure(records))
    return Section("curves", "Learning curves", [Figure("learning_curves", caption, png)])


def gap_section(records: Sequence[RunRecord]) -> Section:
    """The generalization gap per epoch of every head in one plot."""
    caption = "Train minus validation accuracy per epoch, every head."
    png = png_bytes(gap_figure(records))
    return Section("gap", "Generalization gap", [Figure("gap", caption, png)])


def seeds_section(seed_runs: Mapping[str, Sequence[dict]]) -> Section:
    """ "Over seeds": mean ± sd per head (:mod:`globalpool.analysis.seeds`)."""
    return Section("seeds", "Over seeds", seed_blocks(seed_runs))


def reproduce_section(records: Sequence[RunRecord], command: str | None) -> Section:
    """The command, the configuration every head shares, the settings that differ, and
    where the runs are."""
    shared, differing = config_split(records)
    blocks: list = []
    if command:
        blocks += [Text("Command:"), Code(command)]
    shared_json = json.dumps(shared, indent=2, sort_keys=True, default=str)
    blocks += [Text("Configuration shared by every head:"), Code(shared_json, "json")]
    if differing:
        flats = [flatten(r.config, keep_empty=False) for r in records]
        rows = [
            [r.label, *(json.dumps(f.get(k), default=str) for k in differing)]
            for r, f in zip(records, flats, strict=True)
        ]
        blocks += [
            Text("Settings that differ between heads:"),
            Table(["Head", *differing], rows, text_cols=len(differing) + 1),
        ]
    dirs = [[r.label, str(r.run_dir)] for r in records]
    blocks += [Text("Run directories:"), Table(["Head", "Directory"], dirs, text_cols=2)]
    return Section("reproduce", "Command and configuration", blocks)


def environment_section(records: Sequence[RunRecord]) -> Section:
    """Software versions, the machine, and the device(s) the runs trained on."""
    info = environment_info()
    devices = sorted({str(r.summary.get("device")) for r in records if r.summary.get("device")})
    if devices:
        info["training device"] = ", ".join(devices)
    rows = [[k, v] for k, v in info.items()]
    table = Table(["Item", "Value"], rows, text_cols=2)
    return Section("environment", "Software and machine", [table])
