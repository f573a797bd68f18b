"""Formatting the report's numbers: results and localization cells, and the results table
as aligned plain text for the terminal. (The HTML and Markdown forms of a table are
:func:`globalpool.analysis.markup.html_table` / ``markdown_table``.)"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from globalpool.analysis.report.records import COLUMNS

__all__ = [
    "LOC_COLUMNS",
    "format_cell",
    "loc_cell",
    "results_cells",
    "text_table",
]

_ACC_KEYS = {"best_val_acc", "final_val_acc", "test_acc", "final_train_acc", "gap"}

# Localization score keys (from globalpool.analysis.localization) and their column titles.
LOC_COLUMNS = {
    "cam_method": "CAM method",
    "box_acc": "Box acc (IoU ≥ 0.5)",
    "top1_loc": "Top-1 loc",
    "pointing_acc": "Pointing game",
    "mask_iou": "Mask IoU",
    "accuracy": "Classification acc",
    "n_images": "Images",
}


def format_cell(key: str, value: Any) -> str:
    """A results-table value as shown (accuracies in %, the gap in points, counts with
    thousands separators, FLOPs with SI prefixes, durations in min and s)."""
    if key == "pool":
        return str(value) if value else "– (flatten)"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key == "gap":
        return f"{100.0 * float(value):+.1f}"
    if key in _ACC_KEYS:
        return f"{100.0 * float(value):.1f}%"
    if key in ("params_total", "params_head"):
        return f"{int(value):,}"
    if key == "flops_per_image":
        return _si(float(value))
    if key == "wall_time_s":
        return _duration(float(value))
    if key == "images_per_s":
        return f"{float(value):,.0f}"
    return str(value)


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(seconds, 60)
    return f"{int(minutes)} min {sec:02.0f} s"


def results_cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(column titles, formatted cells) of :func:`~.records.results_table` rows."""
    header = [title for _, title in COLUMNS]
    return header, [[format_cell(k, row.get(k)) for k, _ in COLUMNS] for row in rows]


def loc_cell(key: str, value: Any) -> str:
    """A localization score as shown (rates in %, other numbers to 3 decimals)."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key in ("box_acc", "top1_loc", "pointing_acc", "accuracy"):
        return f"{100.0 * float(value):.1f}%"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.3f}"


def text_table(rows: Sequence[dict[str, Any]]) -> str:
    """The results table as aligned plain text (for the terminal).

    Args:
        rows: from :func:`results_table`.
    """
    header, cells = results_cells(rows)
    widths = [max(len(r[j]) for r in [header, *cells]) for j in range(len(header))]

    def line(values):
        return "  ".join(
            v.ljust(w) if j < 2 else v.rjust(w)
            for j, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, cells)])
