"""Per-epoch metrics: ``metrics.jsonl`` and ``metrics.csv`` written as epochs finish.

Each line is flushed and fsynced when its epoch ends, so a run watched from outside (or
killed) has every finished epoch on disk. TensorBoard event files are added when the
``tensorboard`` package is importable.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any

from globalpool.atomic import atomic_write_text

METRIC_KEYS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "gap",
    "lr",
    "images_per_s",
    "epoch_time_s",
    "wall_time_s",
    "train_clock_s",
    "test_acc",
)


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file (empty list when it does not exist)."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _csv_line(row: dict[str, Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([row.get(k, "") for k in METRIC_KEYS])
    return buf.getvalue()


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with non-finite floats as None (JSON has no NaN)."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


class MetricsWriter:
    """Appends one row per epoch to ``metrics.jsonl`` / ``metrics.csv`` in ``run_dir``.

    Args:
        run_dir: the run directory (created if needed).
        keep_epochs: when resuming, rows of epochs ``<= keep_epochs`` are kept and later
            ones (written after the last checkpoint) dropped; None starts afresh.
        rows: when resuming, the metrics history saved with the checkpoint; the files are
            rewritten from it (a kill between the checkpoint and the append loses no row).
        tensorboard: also write TensorBoard scalars under ``run_dir/tb`` when possible.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with MetricsWriter(d, tensorboard=False) as w:
        ...     w.write({"epoch": 1, "train_loss": 0.5, "train_acc": 0.8})
        >>> read_metrics(d + "/metrics.jsonl")[0]["train_acc"]
        0.8
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        keep_epochs: int | None = None,
        rows: list[dict[str, Any]] | None = None,
        tensorboard=True,
    ) -> None:
        os.makedirs(run_dir, exist_ok=True)
        self.jsonl_path = os.path.join(run_dir, "metrics.jsonl")
        self.csv_path = os.path.join(run_dir, "metrics.csv")
        if rows is not None:  # the history committed with the checkpoint: the truth
            kept = [dict(r) for r in rows]
        else:
            kept = [
                r
                for r in read_metrics(self.jsonl_path)
                if keep_epochs and r["epoch"] <= keep_epochs
            ]
        self.rows: list[dict[str, Any]] = kept
        # Rewrite both files atomically from the kept rows, then append as epochs come.
        atomic_write_text(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in kept))
        header = ",".join(METRIC_KEYS) + "\n"
        atomic_write_text(self.csv_path, header + "".join(_csv_line(r) for r in kept))
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")  # noqa: SIM115
        self._csv = open(self.csv_path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(log_dir=os.path.join(run_dir, "tb"))

    def _flush(self) -> None:
        for fh in (self._jsonl, self._csv):
            fh.flush()
            os.fsync(fh.fileno())

    def write(self, row: dict[str, Any]) -> None:
        """Append one epoch's row (non-finite floats are written as null)."""
        row = clean_row(row)
        self.rows.append(row)
        self._jsonl.write(json.dumps(row) + "\n")
        self._csv.write(_csv_line(row))
        self._flush()
        if self._tb is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, row["epoch"])
            self._tb.flush()

    def close(self) -> None:
        for fh in (self._jsonl, self._csv):
            if not fh.closed:
                fh.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
