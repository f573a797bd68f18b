"""The report's figures: learning curves, the generalization gap, and test images with
every head's prediction; :func:`png_bytes` encodes one for the page."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from globalpool.analysis.render import new_figure
from globalpool.analysis.report.records import RunRecord

__all__ = ["gap_figure", "learning_curves_figure", "png_bytes", "predictions_figure"]


def png_bytes(fig, dpi: int = 100) -> bytes:
    """The figure as PNG (no software tag, so equal figures give equal bytes)."""
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
    # Cells of 1.7 in and 10 pt text: labels ~14 px high in the 100-dpi report image
    # (they were 7 pt, ~9.7 px, too small to read).
    name_width, row_height, scale = 1.35, 0.3, 1.7
    top, bottom = -0.3, 1.05 + row_height * len(heads)
    fig = Figure(figsize=(scale * (name_width + k), scale * (bottom - top)))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0.0, name_width + k)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    ax.text(0.05, 0.45, "test image", fontsize=10, ha="left", va="center", color="#59636e")
    for j in range(k):
        x0 = name_width + j + 0.06
        img, cmap = _image_for_display(images[j])
        ax.imshow(img, cmap=cmap, interpolation="nearest", extent=(x0, x0 + 0.88, 0.9, 0.02))
        ax.text(
            x0 + 0.44,
            -0.02,
            f"true: {classes[int(labels[j])]}",
            fontsize=10,
            ha="center",
            va="bottom",
        )
    for i, head in enumerate(heads):
        y = 1.05 + row_height * (i + 0.5)
        pred, prob = predictions[head]
        ax.text(0.05, y, head, fontsize=10, ha="left", va="center", weight="bold")
        for j in range(k):
            ok = int(pred[j]) == int(labels[j])
            ax.text(
                name_width + j + 0.5,
                y,
                f"{classes[int(pred[j])]} {100 * float(prob[j]):.0f}%",
                fontsize=10,
                ha="center",
                va="center",
                color="#1a7f37" if ok else "#cf222e",
            )
    return fig
