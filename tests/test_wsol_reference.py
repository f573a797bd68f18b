"""MaxBoxAcc and MaxBoxAccV2 against the reference implementation's own numbers
(clovaai/wsolevaluation, run by its authors' code on fixed maps and boxes: see
../shared/references/wsolevaluation/README.md), exactly; and PxAP against a brute-force
precision-recall computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from globalpool.analysis.wsol import (
    WSOL_THRESHOLDS,
    box_ious,
    box_sweep,
    max_box_acc,
    max_box_acc_v2,
    pxap,
)

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "references" / "wsolevaluation"
needs_fixture = pytest.mark.skipif(
    not (FIXTURE / "expected.json").is_file(), reason="needs ../shared/references"
)


@pytest.fixture(scope="module")
def fixture():
    data = np.load(FIXTURE / "maps.npz")
    maps = data["maps"] / 255.0
    rows = data["boxes"]
    boxes = [rows[rows[:, 0] == i, 1:].astype(float) for i in range(len(maps))]
    expected = json.loads((FIXTURE / "expected.json").read_text())
    largest, every = box_ious(maps, boxes)
    return maps, boxes, expected, largest, every


@needs_fixture
def test_threshold_grid_is_the_references(fixture):
    _, _, expected, _, _ = fixture
    curve = expected["reference"]["curve_iou_0.5"]["max_box_acc"]
    assert [t for t, _ in curve] == WSOL_THRESHOLDS.tolist()


@needs_fixture
@pytest.mark.parametrize("which", ["max_box_acc", "max_box_acc_v2"])
def test_accuracy_curve_equals_the_reference_at_every_threshold(fixture, which):
    _, _, expected, largest, every = fixture
    sweep = box_sweep(largest if which == "max_box_acc" else every)
    n = sweep["n_images"]
    ours = (sweep["0.5"]["correct"] * 100.0 / float(n)).tolist()  # the reference's formula
    assert ours == [acc for _, acc in expected["reference"]["curve_iou_0.5"][which]]


@needs_fixture
def test_scores_equal_the_reference(fixture):
    maps, boxes, expected, _, _ = fixture
    ref = expected["reference"]
    v1, v2 = max_box_acc(maps, boxes), max_box_acc_v2(maps, boxes)
    assert 100 * v1["max_box_acc"] == ref["max_box_acc"]["iou_0.5"]
    assert v1["best_threshold"] == ref["max_box_acc"]["first_best_threshold_iou_0.5"]
    assert {k: 100 * v for k, v in v1["by_iou"].items()} == ref["max_box_acc"]["by_iou"]
    assert {k: 100 * v for k, v in v2["by_iou"].items()} == ref["max_box_acc_v2"]["by_iou"]
    assert v2["best_threshold"] == ref["max_box_acc_v2"]["first_best_threshold_by_iou"]
    assert np.mean(list(ref["max_box_acc_v2"]["by_iou"].values())) == pytest.approx(
        ref["max_box_acc_v2"]["mean"], abs=1e-12
    )
    assert 100 * v2["max_box_acc_v2"] == pytest.approx(ref["max_box_acc_v2"]["mean"], abs=1e-9)


@needs_fixture
def test_per_image_ious_equal_the_reference(fixture):
    _, _, expected, largest, every = fixture
    grid = WSOL_THRESHOLDS.tolist()
    for image in expected["reference"]["per_image"]:
        for at in image["at"]:
            t = grid.index(min(grid, key=lambda g, at=at: abs(g - at["threshold"])))
            i = image["image"]
            assert largest[i, t] == at["max_box_acc_best_iou"], (i, at["threshold"])
            assert every[i, t] == at["v2_best_iou"], (i, at["threshold"])


@needs_fixture
def test_the_flat_map_scores_zero_as_in_the_reference(fixture):
    _, _, expected, largest, every = fixture
    assert "flat" in expected["cases"]["2"]
    assert largest[2].max() == 0.0 and every[2].max() == 0.0


def _pxap_by_hand(maps: np.ndarray, masks: np.ndarray, thresholds) -> float:
    """Precision and recall of ``score >= t`` pixel by pixel at every threshold (and the
    reference's three top edges 1, 2, 3), the area from the highest threshold down."""
    edges = [*thresholds, 1.0, 2.0, 3.0][::-1]
    scores, truth = maps.ravel(), masks.ravel()
    precision, recall = [], []
    for t in edges:
        kept = scores >= t
        tp, fp = (kept & truth).sum(), (kept & ~truth).sum()
        precision.append(tp / (tp + fp) if tp + fp else 0.0)
        recall.append(tp / truth.sum())
    area = 0.0
    for i in range(1, len(edges)):
        kept = (scores >= edges[i]).sum()
        if kept:
            area += precision[i] * (recall[i] - recall[i - 1])
    return area


def test_pxap_equals_a_brute_force_precision_recall_curve():
    g = np.random.default_rng(3)
    maps = np.clip(g.normal(0.4, 0.25, size=(5, 12, 12)), 0, 1).round(3)
    masks = maps + g.normal(0, 0.2, size=maps.shape) > 0.5
    thresholds = np.arange(0, 1, 0.01)
    assert pxap(maps, masks, thresholds) == pytest.approx(
        _pxap_by_hand(maps, masks, thresholds), abs=1e-12
    )
    perfect = pxap(maps, maps >= 0.5, thresholds)  # split on a bin edge
    assert perfect == pytest.approx(1.0) and pxap(maps, masks, thresholds) < perfect


def test_bad_input_says_what_was_expected():
    with pytest.raises(ValueError, match=r"maps must be in \[0, 1\]"):
        max_box_acc(np.full((1, 4, 4), 2.0), np.array([[0, 0, 2, 2]]))
    with pytest.raises(ValueError, match="convention must be one of"):
        box_ious(np.zeros((1, 4, 4)), np.array([[0, 0, 2, 2]]), convention="opencv")
    with pytest.raises(ValueError, match="boxes for 2 images"):
        box_ious(np.zeros((1, 4, 4)), [np.zeros((1, 4)), np.zeros((1, 4))])
