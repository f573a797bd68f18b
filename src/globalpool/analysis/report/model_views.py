"""The report's views of the trained models: each run's best checkpoint loaded and run on a
few test images through :mod:`globalpool.deploy` (predictions), class activation maps and
localization scores.

These sections need the checkpoints and the test data; when either cannot be had, the
section says so (a note) and the rest of the report is still written.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from globalpool.analysis.markup import Figure, Section, Table, Text
from globalpool.analysis.report.figures import png_bytes, predictions_figure
from globalpool.analysis.report.records import RunRecord
from globalpool.analysis.report.tables import LOC_COLUMNS, loc_cell

__all__ = ["ModelViews", "load_model_views", "model_sections", "select_examples"]

_LOC_IMAGES = 256  # localization is scored on the first this many test images
_FAITH_IMAGES = 32  # faithfulness (34 forward passes an image) on the first this many


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


@dataclass
class ModelViews:
    """The loaded models and the test images shown with their predictions.

    Attributes:
        test_set: the test ``ImageSet``.
        images: uint8 (K, C, H, W), the shown test images; ``labels`` (K,) their classes.
        classes: class names.
        models: head label -> the model (from :func:`globalpool.load`: eval mode, CPU,
            with ``mean`` and ``std``).
        predictions: head label -> (predicted class (K,), its probability (K,)).
    """

    test_set: Any
    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    models: dict[str, Any]
    predictions: dict[str, tuple[np.ndarray, np.ndarray]]


def _predict(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class (K,), its probability (K,)) for uint8 images (K, C, H, W), by
    :func:`globalpool.deploy.predict_proba` (the model's own normalisation and scale)."""
    import torch

    from globalpool.deploy.prediction import predict_proba

    conf, pred = predict_proba(model, torch.as_tensor(images)).max(dim=1)
    return pred.numpy(), conf.numpy()


def load_model_views(
    records: Sequence[RunRecord], test_set=None, num_examples: int = 8
) -> ModelViews:
    """Load every run's best checkpoint and predict ``num_examples`` test images (one per
    class first); the test set is rebuilt from the first run's configuration when None."""
    from globalpool.deploy.loading import load

    if test_set is None:
        test_set = _load_test_set(records[0].config)
    index = select_examples(np.asarray(test_set.labels), num_examples)
    images = np.asarray(test_set.images)[index]
    models = {rec.label: load(rec.run_dir, device="cpu") for rec in records}
    return ModelViews(
        test_set=test_set,
        images=images,
        labels=np.asarray(test_set.labels)[index],
        classes=list(test_set.classes),
        models=models,
        predictions={label: _predict(m, images) for label, m in models.items()},
    )


def _warn(message: str, err: BaseException | None = None) -> None:
    import warnings

    if err is not None and os.environ.get("GLOBALPOOL_DEBUG"):
        traceback.print_exception(err)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _predictions_figure(views: ModelViews) -> Figure:
    return Figure(
        "predictions",
        f"{len(views.images)} test images (one per class first) and each head's prediction "
        "(best checkpoint) with its softmax probability; green is correct, red wrong.",
        png_bytes(predictions_figure(views.images, views.labels, views.classes, views.predictions)),
    )


def _cam_figure(views: ModelViews, num_cam: int) -> Figure:
    import torch

    from globalpool.analysis.render import cam_grid_figure

    k = min(num_cam, len(views.images))
    first = next(iter(views.models.values()))
    fig = cam_grid_figure(
        list(views.models.items()),
        torch.as_tensor(views.images[:k]),
        first.mean,
        first.std,
        views.classes,
        labels=torch.as_tensor(views.labels[:k]),
    )
    return Figure(
        "cam",
        "Class activation maps of the true class, one column per head. CAM for "
        "class-map and average-pool + linear heads, Grad-CAM on the last feature "
        "map for the others (method in each title).",
        png_bytes(fig),
    )


def _localization_blocks(views: ModelViews, loc_set) -> list:
    """Each head's localization scores (its own map) on ``loc_set``."""
    from globalpool.analysis.localization import localization_scores

    scores = {
        label: localization_scores(m, loc_set, m.mean, m.std, target="label")
        for label, m in views.models.items()
    }
    keys = [key for key in LOC_COLUMNS if any(key in v for v in scores.values())]
    header = ["Head", *(LOC_COLUMNS[key] for key in keys)]
    rows = [[label, *(loc_cell(key, v.get(key)) for key in keys)] for label, v in scores.items()]
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
    return [Table(header, rows, table_id="localization", text_cols=2), Text(explain, "meta")]


def _methods_blocks(views: ModelViews, loc_set, methods: Sequence[str]) -> list:
    """Box accuracy and pointing game of every CAM method on every head (same images),
    then their faithfulness (deletion / insertion, average drop / increase)."""
    import torch

    from globalpool.analysis.cam import compute_cam
    from globalpool.analysis.faithfulness import faithfulness
    from globalpool.analysis.images import normalize_images
    from globalpool.analysis.localization import localization_scores

    n_faith = min(len(loc_set), _FAITH_IMAGES)
    rows, faith_rows = [], []
    for label, model in views.models.items():
        cells, faith_cells = [label], [label]
        x = normalize_images(loc_set.images[:n_faith], model.mean, model.std)
        labels = torch.as_tensor(np.asarray(loc_set.labels[:n_faith]))
        for method in methods:
            s = localization_scores(model, loc_set, model.mean, model.std, method=method)
            cells.append(f"{100 * s['box_acc']:.1f}% / {100 * s['pointing_acc']:.1f}%")
            _, maps = compute_cam(model, x, labels, method=method)
            f = faithfulness(model, x, maps, labels)
            faith_cells.append(
                f"{float(f['deletion'].mean()):.3f} / {float(f['insertion'].mean()):.3f} · "
                f"{float(f['average_drop'].mean()):.1f}% / "
                f"{100 * float(f['increase'].mean()):.0f}%"
            )
        rows.append(cells)
        faith_rows.append(faith_cells)
    explain = (
        f"Box accuracy / pointing game of each CAM method on each head, the same "
        f"{len(loc_set)} test images and threshold (20% of the map's maximum)."
    )
    faith_explain = (
        f"Faithfulness of the true class's map on the first {n_faith} test images: "
        "deletion / insertion areas (RISE, Petsiuk et al. 2018: the class probability as "
        "the most salient pixels are removed, or inserted into a blurred copy, in 16 "
        "steps; lower deletion and higher insertion are more faithful) · average drop / "
        "increase in confidence (Chattopadhay et al. 2018: the image times its map, "
        "classified again)."
    )
    return [
        Table(["Head", *methods], rows, table_id="cam-methods", text_cols=1),
        Text(explain, "meta"),
        Table(["Head", *methods], faith_rows, table_id="cam-faithfulness", text_cols=1),
        Text(faith_explain, "meta"),
    ]


def _cam_section(views: ModelViews, num_cam: int, cam_methods: Sequence[str]) -> Section:
    """Localization tables (when the test set has boxes or masks), then the CAM grid; a
    part that fails is named in a note and the others stay."""
    sec = Section("cam", "Class activation maps and localization")
    problems: list[str] = []
    figures = []
    try:
        figures.append(_cam_figure(views, num_cam))
    except Exception as err:
        problems.append(f"CAM grid: {type(err).__name__}: {err}")
    test_set = views.test_set
    has_loc = getattr(test_set, "boxes", None) is not None or (
        getattr(test_set, "masks", None) is not None
    )
    if has_loc:
        try:
            loc_set = test_set.subset(np.arange(min(len(test_set), _LOC_IMAGES)))
            sec.blocks += _localization_blocks(views, loc_set)
            if cam_methods:
                sec.blocks += _methods_blocks(views, loc_set, cam_methods)
        except Exception as err:
            problems.append(f"localization scores: {type(err).__name__}: {err}")
    if problems:
        text = "Partly rendered: " + "; ".join(problems)
        _warn(text)
        sec.blocks.append(Text(text, "note"))
    sec.blocks += figures
    return sec


def model_sections(
    records: Sequence[RunRecord],
    test_set=None,
    num_examples: int = 8,
    num_cam: int = 6,
    want_cam: bool = True,
    cam_methods: Sequence[str] = (),
) -> list[Section]:
    """Test predictions, class activation maps and localization scores of the best models."""
    pred_sec = Section("predictions", "Test images and predictions")
    try:
        views = load_model_views(records, test_set, num_examples)
    except Exception as err:  # an optional section must not lose the rest of the report
        text = (
            "Not rendered: could not load the best checkpoints or the test data "
            f"({type(err).__name__}: {err})."
        )
        _warn(text, err)
        pred_sec.blocks.append(Text(text, "note"))
        return [pred_sec]
    pred_sec.blocks.append(_predictions_figure(views))
    if not want_cam:
        return [pred_sec]
    return [pred_sec, _cam_section(views, num_cam, cam_methods)]
