"""The head-comparison report: ``report.html`` (one self-contained file) and ``report.md``.

The report is rendered from run directories alone (``summary.json``, ``metrics.jsonl``,
``config.json`` and, when present, ``checkpoints/best.safetensors``), so it can be
rebuilt at any time from finished runs. Sections:

- a table per head: parameters (total and head), FLOPs, best and final validation
  accuracy, test accuracy, final train accuracy, generalization gap, epochs, wall time,
  images/s;
- learning curves (train/validation accuracy and loss per epoch, one panel per head,
  shared axes) and the generalization gap per epoch of every head in one plot;
- a few test images with every model's prediction (needs the checkpoints and the data);
- class activation maps and localization scores (needs :mod:`globalpool.analysis.cam`);
- the exact command, the configuration, software versions and the machine.

``report.html`` embeds every plot as a base64 PNG and its CSS inline; it loads nothing
from the network. A small inline script checks, once the page has loaded, that every
image decoded, and records the result in ``#render-check`` (used by the browser test).
``report.md`` refers to the same plots saved as PNG files in ``report_assets/``.

Example:
    >>> from globalpool.analysis.report import write_report  # doctest: +SKIP
    >>> paths = write_report("runs/compare", ["runs/compare/fc", "runs/compare/classmap-avg"])
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import platform
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from globalpool.analysis.render import new_figure
from globalpool.atomic import atomic_write_bytes, atomic_write_text

__all__ = [
    "ASSETS_DIRNAME",
    "RunRecord",
    "environment_info",
    "load_run_record",
    "results_table",
    "text_table",
    "write_report",
]

ASSETS_DIRNAME = "report_assets"

# (key in the table row, column title, formatter); the single source for HTML and Markdown.
_COLUMNS: list[tuple[str, str]] = [
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
_ACC_KEYS = {"best_val_acc", "final_val_acc", "test_acc", "final_train_acc", "gap"}


# --------------------------------------------------------------------------- runs
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


def results_table(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per run with the report's table columns (raw numbers, not formatted)."""
    rows = []
    for rec in records:
        s = rec.summary
        row = {"label": rec.label, "head": s.get("head"), "pool": s.get("pool")}
        for key, _ in _COLUMNS[2:]:
            row[key] = s.get(key)
        if row["gap"] is None and None not in (row["final_train_acc"], row["final_val_acc"]):
            row["gap"] = row["final_train_acc"] - row["final_val_acc"]
        rows.append(row)
    return rows


def _format_cell(key: str, value: Any) -> str:
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


# --------------------------------------------------------------------------- machine
def environment_info() -> dict[str, str]:
    """Software versions and the machine: python, torch, numpy, matplotlib, globalpool,
    platform, CPU count and CUDA devices (if any)."""
    import matplotlib
    import torch

    import globalpool
    from globalpool.machine import machine_line

    info = {
        "globalpool": globalpool.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": machine_line(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
    }
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda"] = f"{torch.version.cuda}; " + ", ".join(names)
    else:
        info["cuda"] = "not available"
    return info


# --------------------------------------------------------------------------- figures
def _png_bytes(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _head_colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def learning_curves_figure(records: Sequence[RunRecord]):
    """Two rows (accuracy, loss) by one column per head; axes shared along each row."""
    n = len(records)
    fig = new_figure(max(3.0 * n, 5.0), 5.4)
    axes = fig.subplots(2, n, sharex=True, sharey="row", squeeze=False)
    for col, rec in enumerate(records):
        epochs = rec.epochs
        acc_ax, loss_ax = axes[0, col], axes[1, col]
        acc_ax.plot(epochs, rec.series("train_acc"), "-o", ms=3, color="C0", label="train")
        acc_ax.plot(epochs, rec.series("val_acc"), "-o", ms=3, color="C1", label="validation")
        loss_ax.plot(epochs, rec.series("train_loss"), "-o", ms=3, color="C0", label="train")
        loss_ax.plot(epochs, rec.series("val_loss"), "-o", ms=3, color="C1", label="validation")
        acc_ax.set_title(rec.label, fontsize=10)
        loss_ax.set_xlabel("epoch")
        for ax in (acc_ax, loss_ax):
            ax.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    axes[1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("accuracy")
    axes[1, 0].set_ylabel("loss")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    return fig


def gap_figure(records: Sequence[RunRecord]):
    """The generalization gap (train − validation accuracy, points) per epoch, all heads."""
    fig = new_figure(7.0, 3.8)
    ax = fig.subplots()
    for rec, color in zip(records, _head_colors(len(records)), strict=True):
        gap = rec.series("gap")
        if np.all(np.isnan(gap)):
            gap = rec.series("train_acc") - rec.series("val_acc")
        ax.plot(rec.epochs, 100.0 * gap, "-o", ms=3, color=color, label=rec.label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("train − val accuracy (points)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    return fig


def _image_for_display(image_chw: np.ndarray) -> tuple[np.ndarray, str | None]:
    img = np.asarray(image_chw)
    if img.shape[0] == 1:
        return img[0], "gray"
    return np.transpose(img[:3], (1, 2, 0)), None


def predictions_figure(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    predictions: dict[str, tuple[np.ndarray, np.ndarray]],
):
    """Row 0: the test images with their true class; one text row per head below with the
    predicted class and its probability (green: correct, red: wrong).

    Args:
        images: uint8 (K, C, H, W).
        labels: int (K,).
        classes: class names.
        predictions: label -> (predicted class (K,), probability of it (K,)).
    """
    # One axes in "cell" units (an image is 1 x 1) so that every prediction sits exactly
    # under its image whatever the number of heads or images.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k, heads = len(images), list(predictions)
    name_width, row_height, scale = 1.35, 0.28, 1.25
    top, bottom = -0.3, 1.05 + row_height * len(heads)
    fig = Figure(figsize=(scale * (name_width + k), scale * (bottom - top)))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0.0, name_width + k)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    ax.text(0.05, 0.45, "test image", fontsize=8, ha="left", va="center", color="#59636e")
    for j in range(k):
        x0 = name_width + j + 0.06
        img, cmap = _image_for_display(images[j])
        ax.imshow(img, cmap=cmap, interpolation="nearest", extent=(x0, x0 + 0.88, 0.9, 0.02))
        ax.text(
            x0 + 0.44,
            -0.02,
            f"true: {classes[int(labels[j])]}",
            fontsize=7.5,
            ha="center",
            va="bottom",
        )
    for i, head in enumerate(heads):
        y = 1.05 + row_height * (i + 0.5)
        pred, prob = predictions[head]
        ax.text(0.05, y, head, fontsize=7.5, ha="left", va="center", weight="bold")
        for j in range(k):
            ok = int(pred[j]) == int(labels[j])
            ax.text(
                name_width + j + 0.5,
                y,
                f"{classes[int(pred[j])]} {100 * float(prob[j]):.0f}%",
                fontsize=7,
                ha="center",
                va="center",
                color="#1a7f37" if ok else "#cf222e",
            )
    return fig


# --------------------------------------------------------------------------- models
def select_examples(labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` test images: the first image of each class in turn (so every
    class shows up before any repeats), deterministic."""
    labels = np.asarray(labels)
    by_class = [np.flatnonzero(labels == c).tolist() for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < min(count, len(labels)):
        for members in by_class:
            if members and len(picked) < count:
                picked.append(members.pop(0))
    return np.array(sorted(picked), dtype=np.int64)


def _load_test_set(config: dict[str, Any]):
    """Rebuild the run's test split from its configuration (dataset name + options)."""
    from globalpool.data import load_dataset

    name = config.get("dataset")
    if not name:
        raise ValueError("the run's configuration names no dataset")
    return load_dataset(name, **dict(config.get("dataset_kwargs") or {})).test


def _predict(model, meta: dict[str, Any], images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class (K,), its softmax probability (K,)) for uint8 images (K, C, H, W)."""
    import torch

    from globalpool.data import normalize

    x = normalize(torch.as_tensor(images), meta["mean"], meta["std"])
    with torch.no_grad():
        probs = torch.softmax(model(x).float(), dim=1)
    conf, pred = probs.max(dim=1)
    return pred.numpy(), conf.numpy()


# Localization score keys (from globalpool.analysis.localization) and their column titles.
_LOC_COLUMNS = {
    "cam_method": "CAM method",
    "box_acc": "Box acc (IoU ≥ 0.5)",
    "top1_loc": "Top-1 loc",
    "pointing_acc": "Pointing game",
    "mask_iou": "Mask IoU",
    "accuracy": "Classification acc",
    "n_images": "Images",
}


def _loc_cell(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key in ("box_acc", "top1_loc", "pointing_acc", "accuracy"):
        return f"{100.0 * float(value):.1f}%"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.3f}"


# --------------------------------------------------------------------------- assembly
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;
background:#fff;line-height:1.45}
main{max-width:1280px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}
h2{font-size:1.25em;margin:32px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#59636e;font-size:.9em}
table{border-collapse:collapse;font-size:.88em;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f6f8fa;white-space:normal;text-align:left;vertical-align:bottom}
td:first-child,th:first-child,td.text{text-align:left}
tr.best td{background:#dafbe1}
.scroll{overflow-x:auto}
img{max-width:100%;height:auto;display:block;margin:8px 0}
figure{margin:8px 0}
figcaption{color:#59636e;font-size:.85em}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:.82em;border-radius:6px}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px;
font-size:.9em}
#render-check{display:none}
"""

# Runs after load: every <img> must have decoded (complete, naturalWidth > 0) and the
# results table must exist; the verdict goes into #render-check for the browser test.
_RENDER_CHECK_JS = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
  var rows = document.querySelectorAll("#results tbody tr").length;
  var el = document.getElementById("render-check");
  var ok = broken.length === 0 && rows > 0;
  el.setAttribute("data-status", ok ? "ok" : "failed");
  el.setAttribute("data-images", String(imgs.length));
  el.setAttribute("data-broken", String(broken.length));
  el.setAttribute("data-rows", String(rows));
  el.textContent = "Render check: " + (imgs.length - broken.length) + "/" + imgs.length +
    " images decoded, " + rows + " table rows.";
});
"""


@dataclass
class _Figure:
    name: str  # file stem in report_assets/
    caption: str
    png: bytes


@dataclass
class _Section:
    anchor: str
    title: str
    html: str = ""
    markdown: str = ""
    figures: list[_Figure] = field(default_factory=list)


def _html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    table_id=None,
    text_cols: int = 1,
    row_classes: Sequence[str] | None = None,
) -> str:
    e = html.escape
    out = [f'<div class="scroll"><table{f" id={chr(34)}{table_id}{chr(34)}" if table_id else ""}>']
    out.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(
            f'<td class="text">{e(c)}</td>' if j < text_cols else f"<td>{e(c)}</td>"
            for j, c in enumerate(row)
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], text_cols: int = 1) -> str:
    def esc(s):
        return str(s).replace("|", "\\|")

    align = [":--" if j < text_cols else "--:" for j in range(len(header))]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _flatten(d: dict[str, Any], prefix: str = "", keep_empty: bool = True) -> dict[str, Any]:
    flat = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and (v or not keep_empty):
            flat.update(_flatten(v, key + ".", keep_empty))
        else:
            flat[key] = v
    return flat


_PER_RUN_KEYS = {"out_dir", "run_dir", "output_dir", "name", "run_name"}


def _config_split(records: Sequence[RunRecord]) -> tuple[dict[str, Any], list[str]]:
    """(settings shared by every run, keys whose values differ between runs)."""
    # Empty dicts are dropped when comparing, so {} vs {"dropout": 0.5} differs only in
    # "head_kwargs.dropout".
    flats = [_flatten(r.config, keep_empty=False) for r in records]
    keys = sorted(set().union(*flats)) if flats else []
    differing = [
        k
        for k in keys
        if k not in _PER_RUN_KEYS
        and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1
    ]
    shared: dict[str, Any] = {}
    for key, value in (_flatten(records[0].config) if records else {}).items():
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


def _results_section(records: Sequence[RunRecord]) -> _Section:
    rows = results_table(records)
    header = [title for _, title in _COLUMNS]
    cells = [[_format_cell(k, row.get(k)) for k, _ in _COLUMNS] for row in rows]
    tests = [r["test_acc"] for r in rows if r.get("test_acc") is not None]
    best = max(tests) if tests else None
    marks = ["best" if best is not None and r.get("test_acc") == best else "" for r in rows]
    notes = highlights(rows)
    explain = (
        "Gap = final train accuracy − final validation accuracy, in percentage points; a "
        "large gap means the head memorises the training set. FLOPs are per image at the "
        "training size. *Wall time and images/s depend on what else the machine ran at the "
        "time; compare heads by them only when the runs shared a quiet machine."
    )
    sec = _Section("results", "Results")
    sec.html = (
        _html_table(header, cells, table_id="results", text_cols=2, row_classes=marks)
        + f'<p class="meta">{html.escape(explain)} Green row: highest test accuracy.</p>'
        + ("<ul>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>" if notes else "")
    )
    md_notes = "\n".join("- " + n.replace("<b>", "**").replace("</b>", "**") for n in notes)
    sec.markdown = _md_table(header, cells, text_cols=2) + f"\n\n{explain}\n\n{md_notes}\n"
    return sec


def _figure_section(anchor, title, fig_name, caption, fig) -> _Section:
    sec = _Section(anchor, title)
    sec.figures.append(_Figure(fig_name, caption, _png_bytes(fig)))
    return sec


def _note(text: str) -> tuple[str, str]:
    return f'<p class="note">{html.escape(text)}</p>', f"> {text}\n"


def _methods_table(cam_sec, loaded, loc_set, methods) -> None:
    """Box accuracy and pointing game of every CAM method on every head (same images)."""
    from globalpool.analysis.localization import localization_scores

    header = ["Head", *methods]
    rows = []
    for label, (model, meta) in loaded.items():
        cells = [label]
        for method in methods:
            s = localization_scores(model, loc_set, meta["mean"], meta["std"], method=method)
            cells.append(f"{100 * s['box_acc']:.1f}% / {100 * s['pointing_acc']:.1f}%")
        rows.append(cells)
    explain = (
        f"Box accuracy / pointing game of each CAM method on each head, the same "
        f"{len(loc_set)} test images and threshold (20% of the map's maximum)."
    )
    cam_sec.html += _html_table(header, rows, table_id="cam-methods", text_cols=1)
    cam_sec.html += f'<p class="meta">{html.escape(explain)}</p>'
    cam_sec.markdown += _md_table(header, rows, text_cols=1) + f"\n\n{explain}\n\n"


def _model_sections(
    records, test_set, num_examples, num_cam, want_cam, cam_methods=()
) -> list[_Section]:
    """Test predictions, class activation maps and localization scores of the best models."""
    pred_sec = _Section("predictions", "Test images and predictions")
    try:
        from globalpool.models.io import load_run

        if test_set is None:
            test_set = _load_test_set(records[0].config)
        index = select_examples(np.asarray(test_set.labels), num_examples)
        images = np.asarray(test_set.images)[index]
        labels = np.asarray(test_set.labels)[index]
        classes = list(test_set.classes)
        loaded = {}
        for rec in records:
            model, meta = load_run(rec.run_dir)
            loaded[rec.label] = (model.eval().to("cpu"), meta)
        preds = {label: _predict(m, meta, images) for label, (m, meta) in loaded.items()}
    except Exception as err:  # an optional section must not lose the rest of the report
        text = (
            "Not rendered: could not load the best checkpoints or the test data "
            f"({type(err).__name__}: {err})."
        )
        _warn(text, err)
        pred_sec.html, pred_sec.markdown = _note(text)
        return [pred_sec]

    pred_sec.figures.append(
        _Figure(
            "predictions",
            f"{len(index)} test images (one per class first) and each head's prediction "
            "(best checkpoint) with its softmax probability; green is correct, red wrong.",
            _png_bytes(predictions_figure(images, labels, classes, preds)),
        )
    )
    if not want_cam:
        return [pred_sec]

    cam_sec = _Section("cam", "Class activation maps and localization")
    problems: list[str] = []
    first_meta = next(iter(loaded.values()))[1]
    k = min(num_cam, len(index))
    try:
        import torch

        from globalpool.analysis.render import cam_grid_figure

        fig = cam_grid_figure(
            [(label, m) for label, (m, _) in loaded.items()],
            torch.as_tensor(images[:k]),
            first_meta["mean"],
            first_meta["std"],
            classes,
            labels=torch.as_tensor(labels[:k]),
        )
        cam_sec.figures.append(
            _Figure(
                "cam",
                "Class activation maps of the true class, one column per head. CAM for "
                "class-map and average-pool + linear heads, Grad-CAM on the last feature "
                "map for the others (method in each title).",
                _png_bytes(fig),
            )
        )
    except Exception as err:
        problems.append(f"CAM grid: {type(err).__name__}: {err}")

    has_loc = getattr(test_set, "boxes", None) is not None or (
        getattr(test_set, "masks", None) is not None
    )
    if has_loc:
        try:
            from globalpool.analysis.localization import localization_scores

            loc_set = test_set.subset(np.arange(min(len(test_set), 256)))
            scores = {
                label: localization_scores(m, loc_set, meta["mean"], meta["std"], target="label")
                for label, (m, meta) in loaded.items()
            }
            keys = [key for key in _LOC_COLUMNS if any(key in v for v in scores.values())]
            header = ["Head", *(_LOC_COLUMNS[key] for key in keys)]
            rows = [
                [label, *(_loc_cell(key, v.get(key)) for key in keys)]
                for label, v in scores.items()
            ]
            n = len(loc_set)
            explain = (
                f"Localization of the true class's map on the first {n} test images "
                "(map thresholded at 20% of its maximum): box accuracy = largest region's box "
                "has IoU ≥ 0.5 with the object's box; top-1 loc = box correct and class "
                "correct; pointing game = the map's maximum lies on the object; mask IoU = "
                "IoU of the thresholded map with the object mask. Its accuracy column is of "
                f"the best checkpoint (best validation epoch) on these {n} images, so it "
                "differs from the results table's test accuracy (last weights, all test "
                "images)."
            )
            cam_sec.html += _html_table(header, rows, table_id="localization", text_cols=2)
            cam_sec.html += f'<p class="meta">{html.escape(explain)}</p>'
            cam_sec.markdown += _md_table(header, rows, text_cols=2) + f"\n\n{explain}\n\n"
            if cam_methods:
                _methods_table(cam_sec, loaded, loc_set, cam_methods)
        except Exception as err:
            problems.append(f"localization scores: {type(err).__name__}: {err}")
    if problems:
        text = "Partly rendered: " + "; ".join(problems)
        _warn(text)
        h, m = _note(text)
        cam_sec.html += h
        cam_sec.markdown += m
    return [pred_sec, cam_sec]


def _warn(message: str, err: BaseException | None = None) -> None:
    import warnings

    if err is not None and os.environ.get("GLOBALPOOL_DEBUG"):
        traceback.print_exception(err)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _reproduce_section(records, command) -> _Section:
    sec = _Section("reproduce", "Command and configuration")
    shared, differing = _config_split(records)
    parts_html, parts_md = [], []
    if command:
        parts_html.append(f"<p>Command:</p><pre>{html.escape(command)}</pre>")
        parts_md.append(f"Command:\n\n```\n{command}\n```\n")
    shared_json = json.dumps(shared, indent=2, sort_keys=True, default=str)
    parts_html.append(
        f"<p>Configuration shared by every head:</p><pre>{html.escape(shared_json)}</pre>"
    )
    parts_md.append(f"Configuration shared by every head:\n\n```json\n{shared_json}\n```\n")
    if differing:
        flats = [_flatten(r.config, keep_empty=False) for r in records]
        rows = [
            [r.label, *(json.dumps(f.get(k), default=str) for k in differing)]
            for r, f in zip(records, flats, strict=True)
        ]
        parts_html.append(
            "<p>Settings that differ between heads:</p>"
            + _html_table(["Head", *differing], rows, text_cols=len(differing) + 1)
        )
        parts_md.append(
            "Settings that differ between heads:\n\n"
            + _md_table(["Head", *differing], rows, text_cols=len(differing) + 1)
        )
    dirs = [[r.label, str(r.run_dir)] for r in records]
    parts_html.append(
        "<p>Run directories:</p>" + _html_table(["Head", "Directory"], dirs, text_cols=2)
    )
    parts_md.append("Run directories:\n\n" + _md_table(["Head", "Directory"], dirs, text_cols=2))
    sec.html, sec.markdown = "\n".join(parts_html), "\n\n".join(parts_md) + "\n"
    return sec


def _environment_section(records) -> _Section:
    info = environment_info()
    devices = sorted({str(r.summary.get("device")) for r in records if r.summary.get("device")})
    if devices:
        info["training device"] = ", ".join(devices)
    rows = [[k, v] for k, v in info.items()]
    sec = _Section("environment", "Software and machine")
    sec.html = _html_table(["Item", "Value"], rows, text_cols=2)
    sec.markdown = _md_table(["Item", "Value"], rows, text_cols=2) + "\n"
    return sec


def _header(records, title) -> tuple[str, str, str]:
    s0 = records[0].summary
    facts = {
        "dataset": s0.get("dataset"),
        "model": s0.get("model"),
        "epochs": s0.get("epochs"),
        "heads": len(records),
    }
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    line = " · ".join(f"{k}: {v}" for k, v in facts.items() if v is not None)
    title = title or f"Head comparison: {s0.get('model', '?')} on {s0.get('dataset', '?')}"
    return title, line, stamp


def write_report(
    out_dir: str | os.PathLike,
    runs: Sequence[str | os.PathLike | RunRecord],
    *,
    labels: Sequence[str] | None = None,
    command: str | None = None,
    title: str | None = None,
    test_set=None,
    num_examples: int = 8,
    num_cam: int = 6,
    cam: bool = True,
    model_views: bool = True,
    cam_methods: Sequence[str] = (),
    notes: Sequence[str] = (),
    seed_runs: dict[str, list[dict]] | None = None,
) -> dict[str, Path]:
    """Write ``out_dir/report.html`` and ``out_dir/report.md`` (+ ``report_assets/*.png``).

    Args:
        out_dir: where the report goes (usually the compare directory).
        runs: finished run directories (or records from :func:`load_run_record`), one per
            head, in table order.
        labels: names of the heads in the report; by default each directory's name.
        command: the command line that produced the runs, shown verbatim.
        title: page title; by default "Head comparison: <model> on <dataset>".
        test_set: the test ``ImageSet`` for predictions and CAM; rebuilt from the first
            run's configuration when None.
        num_examples: how many test images to show with predictions.
        num_cam: how many of them to show with class activation maps.
        cam: add class activation maps (and localization scores when the test set has
            boxes or masks).
        model_views: load each run's best checkpoint for predictions/CAM; False renders
            only what the metric files hold.
        cam_methods: CAM methods (``gradcam``, ``gradcam++``, ``layercam``, ``eigencam``,
            ``scorecam``) to score on every head beside its own map: adds a methods x heads
            localization table (box accuracy / pointing game) to the CAM section.
        notes: warnings shown at the top (e.g. heads that diverged and are left out).
        seed_runs: head label -> the summaries of its runs over several seeds; adds the
            "Over seeds" section (mean ± sd, and whether the seeds separate the heads).
            The other sections show ``runs`` (one seed).

    Returns:
        ``{"html": path, "markdown": path, "assets": dir}``.

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

    sections = []
    if seed_runs:
        from globalpool.analysis.seeds import seed_section

        seeds_sec = _Section("seeds", "Over seeds")
        seeds_sec.html, seeds_sec.markdown = seed_section(seed_runs)
        sections.append(seeds_sec)
    sections += [
        _results_section(records),
        _figure_section(
            "curves",
            "Learning curves",
            "learning_curves",
            "Train and validation accuracy (top) and loss (bottom) per epoch; one column per "
            "head, axes shared along each row.",
            learning_curves_figure(records),
        ),
        _figure_section(
            "gap",
            "Generalization gap",
            "gap",
            "Train minus validation accuracy per epoch, every head.",
            gap_figure(records),
        ),
    ]
    if model_views:
        sections += _model_sections(records, test_set, num_examples, num_cam, cam, cam_methods)
    sections += [_reproduce_section(records, command), _environment_section(records)]

    out_dir = Path(out_dir)
    assets = out_dir / ASSETS_DIRNAME
    page_title, facts, stamp = _header(records, title)
    e = html.escape

    body, md = [], [f"# {page_title}\n", f"{facts} · generated {stamp}\n"]
    toc = " · ".join(f'<a href="#{s.anchor}">{e(s.title)}</a>' for s in sections)
    body.append(f'<h1>{e(page_title)}</h1><p class="meta">{e(facts)} · generated {e(stamp)}</p>')
    body.append(f'<p class="meta">{toc}</p>')
    for note in notes:
        note_html, note_md = _note(note)
        body.append(note_html)
        md.append(note_md)
    for sec in sections:
        body.append(f'<section id="{sec.anchor}"><h2>{e(sec.title)}</h2>')
        md.append(f"## {sec.title}\n")
        if sec.html:
            body.append(sec.html)
            md.append(sec.markdown)
        for fig in sec.figures:
            b64 = base64.b64encode(fig.png).decode("ascii")
            body.append(
                f'<figure><img alt="{e(fig.caption)}" src="data:image/png;base64,{b64}">'
                f"<figcaption>{e(fig.caption)}</figcaption></figure>"
            )
            atomic_write_bytes(assets / f"{fig.name}.png", fig.png)
            md.append(f"![{fig.caption}]({ASSETS_DIRNAME}/{fig.name}.png)\n\n*{fig.caption}*\n")
        body.append("</section>")
    body.append('<p id="render-check" data-status="pending">Render check: not run.</p>')

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(page_title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n{chr(10).join(body)}\n</main>"
        f"<script>{_RENDER_CHECK_JS}</script></body></html>\n"
    )
    html_path = out_dir / "report.html"
    atomic_write_text(html_path, page)
    md_path = out_dir / "report.md"
    atomic_write_text(md_path, "\n".join(md))
    return {"html": html_path, "markdown": md_path, "assets": assets}


def text_table(rows: Sequence[dict[str, Any]]) -> str:
    """The results table as aligned plain text (for the terminal).

    Args:
        rows: from :func:`results_table`.
    """
    header = [title for _, title in _COLUMNS]
    cells = [[_format_cell(k, row.get(k)) for k, _ in _COLUMNS] for row in rows]
    widths = [max(len(r[j]) for r in [header, *cells]) for j in range(len(header))]

    def line(values):
        return "  ".join(
            v.ljust(w) if j < 2 else v.rjust(w)
            for j, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, cells)])
