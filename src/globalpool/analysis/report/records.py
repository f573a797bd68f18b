"""Reading finished runs: :class:`RunRecord`, the results table's rows, the sentences
drawn from them, and the configuration shared by every run or differing between them."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COLUMNS",
    "RunRecord",
    "config_split",
    "flatten",
    "highlights",
    "load_records",
    "load_run_record",
    "results_table",
]

# (key in the table row, column title): the one list of the results table's columns, for
# HTML, Markdown and the terminal alike.
COLUMNS: list[tuple[str, str]] = [
    ("label", "Head"),
    ("pool", "Pool"),
    ("params_total", "Params (total)"),
    ("params_head", "Params (head)"),
    ("flops_per_image", "FLOPs / image"),
    ("best_val_acc", "Best val acc"),
    ("final_val_acc", "Final val acc"),
    ("test_acc", "Test acc"),
    ("final_train_acc", "Final train acc"),
    ("gap", "Gap (train − val), points"),
    ("epochs", "Epochs"),
    ("wall_time_s", "Wall time*"),
    ("images_per_s", "Images/s*"),
]


@dataclass
class RunRecord:
    """What the report reads from one run directory.

    Attributes:
        label: the head's name in the report (by default the directory name).
        run_dir: the run directory.
        summary: ``summary.json``.
        metrics: the rows of ``metrics.jsonl``, one per epoch, in order.
        config: ``config.json`` (or ``summary["config"]`` when the file is absent).
    """

    label: str
    run_dir: Path
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)

    def series(self, key: str) -> np.ndarray:
        """Per-epoch values of ``key`` as float array (NaN where an epoch lacks it)."""
        return np.array([_as_float(row.get(key)) for row in self.metrics], dtype=np.float64)

    @property
    def epochs(self) -> np.ndarray:
        return np.array([int(row.get("epoch", i + 1)) for i, row in enumerate(self.metrics)])


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            # A run killed while appending leaves at most one torn last line; skip only that.
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({err})") from err
    return rows


def load_run_record(run_dir: str | os.PathLike, label: str | None = None) -> RunRecord:
    """Read ``summary.json``, ``metrics.jsonl`` and ``config.json`` of a finished run.

    Raises:
        FileNotFoundError: the directory or its ``summary.json`` (written when training
            ends) or ``metrics.jsonl`` is missing.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    summary_path, metrics_path = run_dir / "summary.json", run_dir / "metrics.jsonl"
    if not summary_path.is_file():
        raise FileNotFoundError(
            f"{str(run_dir)!r} has no summary.json: expected a finished training run"
        )
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} has no metrics.jsonl")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    config_path = run_dir / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
    else:
        config = dict(summary.get("config") or {})
    return RunRecord(
        label=label or run_dir.name,
        run_dir=run_dir,
        summary=summary,
        metrics=_read_jsonl(metrics_path),
        config=config,
    )


def load_records(
    runs: Sequence[str | os.PathLike | RunRecord], labels: Sequence[str] | None = None
) -> list[RunRecord]:
    """The records of ``runs`` (directories are read), relabelled by ``labels``.

    Raises:
        ValueError: no runs, or labels of the wrong length / not unique.
        FileNotFoundError: a run directory is missing or unfinished.
    """
    if not runs:
        raise ValueError("write_report needs at least one run directory, got none")
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f"got {len(labels)} labels for {len(runs)} runs")
    records = [
        r if isinstance(r, RunRecord) else load_run_record(r, labels[i] if labels else None)
        for i, r in enumerate(runs)
    ]
    if labels is not None:
        for rec, label in zip(records, labels, strict=True):
            rec.label = label
    names = [r.label for r in records]
    if len(set(names)) != len(names):
        raise ValueError(f"head labels must be unique, got {names}")
    return records


def results_table(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per run with the report's table columns (raw numbers, not formatted)."""
    rows = []
    for rec in records:
        s = rec.summary
        row = {"label": rec.label, "head": s.get("head"), "pool": s.get("pool")}
        for key, _ in COLUMNS[2:]:
            row[key] = s.get(key)
        if row["gap"] is None and None not in (row["final_train_acc"], row["final_val_acc"]):
            row["gap"] = row["final_train_acc"] - row["final_val_acc"]
        rows.append(row)
    return rows


def highlights(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Short sentences computed from the table (which head did best, overfit most...)."""

    def pick(key, best):
        valid = [r for r in rows if r.get(key) is not None and not math.isnan(float(r[key]))]
        return best(valid, key=lambda r: float(r[key])) if valid else None

    out = []
    top = pick("test_acc", max)
    if top:
        out.append(f"Highest test accuracy: <b>{top['label']}</b> ({100 * top['test_acc']:.1f}%).")
    big = pick("gap", max)
    small = pick("gap", lambda rs, key: min((r for r in rs if float(r["gap"]) >= 0), key=key,
                                            default=None))  # fmt: skip
    if big and small and big is not small:
        out.append(
            f"Largest generalization gap: <b>{big['label']}</b> ({100 * big['gap']:.1f} points); "
            f"smallest: <b>{small['label']}</b> ({100 * small['gap']:.1f} points)."
        )
    for r in rows:  # a negative gap is an underfit head (dropout, augmentation), not a win
        if r.get("gap") is not None and float(r["gap"]) < 0:
            out.append(
                f"<b>{r['label']}</b> trains below its validation accuracy "
                f"({100 * r['gap']:.1f} points): the running training accuracy under dropout "
                "and augmentation, an underfit head rather than a better-generalising one."
            )
    most, least = pick("params_head", max), pick("params_head", min)
    if most and least and most is not least and least["params_head"]:
        ratio = most["params_head"] / least["params_head"]
        out.append(
            f"Head parameters range from {int(least['params_head']):,} "
            f"(<b>{least['label']}</b>) to {int(most['params_head']):,} "
            f"(<b>{most['label']}</b>), {ratio:,.0f}× more."
        )
    return out


# --------------------------------------------------------------------------- configuration
def flatten(d: dict[str, Any], prefix: str = "", keep_empty: bool = True) -> dict[str, Any]:
    """Nested dicts as one dict with dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``);
    an empty dict stays a value when ``keep_empty``, else it vanishes."""
    flat = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and (v or not keep_empty):
            flat.update(flatten(v, key + ".", keep_empty))
        else:
            flat[key] = v
    return flat


_PER_RUN_KEYS = {"out_dir", "run_dir", "output_dir", "name", "run_name"}


def config_split(records: Sequence[RunRecord]) -> tuple[dict[str, Any], list[str]]:
    """(settings shared by every run, keys whose values differ between runs)."""
    # Empty dicts are dropped when comparing, so {} vs {"dropout": 0.5} differs only in
    # "head_kwargs.dropout".
    flats = [flatten(r.config, keep_empty=False) for r in records]
    keys = sorted(set().union(*flats)) if flats else []
    differing = [
        k
        for k in keys
        if k not in _PER_RUN_KEYS
        and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1
    ]
    shared: dict[str, Any] = {}
    for key, value in (flatten(records[0].config) if records else {}).items():
        if key in _PER_RUN_KEYS or key in differing:
            continue
        if any(d.startswith(key + ".") for d in differing):  # e.g. {} vs {"dropout": 0.5}
            continue
        *parents, leaf = key.split(".")
        node = shared
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return shared, differing
