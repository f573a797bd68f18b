"""MaxBoxAcc, MaxBoxAccV2 and PxAP, the localization metrics of Choe et al. 2020
("Evaluating Weakly Supervised Object Localization Methods Right"), computed as the
reference implementation (clovaai/wsolevaluation, ``evaluation.py``) computes them.

Published WSOL tables use the reference's numbers, so by default globalpool follows its
conventions exactly (``convention="wsolevaluation"``; tested to equal the reference's own
output on fixed maps and boxes in ``../shared/references/wsolevaluation``):

- a map in [0, 1] is quantised as ``uint8(map * 255)`` (truncated), and at threshold
  ``t`` a pixel of value ``k`` is kept when ``k > int(t * max_k)`` (OpenCV's
  ``THRESH_BINARY``, strict);
- the regions are OpenCV's contours (``findContours``, ``RETR_TREE``: outer borders and
  hole borders); MaxBoxAcc keeps the contour of largest polygon area (``contourArea``),
  MaxBoxAccV2 every contour; no contour at all gives the box ``[0, 0, 0, 0]``;
- a contour's box is ``(x, y, x + w, y + h)`` of ``boundingRect``, clamped to
  ``width - 1`` and ``height - 1``, and IoUs count pixels inclusively (``+ 1`` on every
  side), so a box is one pixel wider and taller than its region except at the right and
  bottom borders;
- the thresholds are ``numpy.arange(0, 1, 0.001)`` (the reference's default
  ``cam_curve_interval``); an image is correct at IoU level ``u`` when its best IoU over
  predicted and true boxes is ``>= u``.

``convention="pixel-edge"`` is globalpool's own reading of the same definitions: the float
map kept where ``score >= t * max``, 8-connected regions (MaxBoxAcc: the largest by pixel
count), boxes in pixel-edge coordinates and exact-area IoUs; a constant map keeps every
pixel. It scores 0.1-1.7 points from the reference on smooth maps; use it to compare with
globalpool results recorded before 2026-12-08, not with published tables.

PxAP (pixel average precision) is the area under the precision-recall curve of the map's
pixels against a ground-truth mask, over the same threshold grid (the reference's
``MaskEvaluator``, without its ignore regions, which globalpool's data sets do not have).

Boxes are ``(x0, y0, x1, y1)`` in pixel-edge coordinates (x1, y1 exclusive, as everywhere in
globalpool); one box per image as an (N, 4) array, or several as a sequence of N (K_i, 4)
arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "CONVENTIONS",
    "IOU_LEVELS",
    "WSOL_THRESHOLDS",
    "box_ious",
    "box_sweep",
    "max_box_acc",
    "max_box_acc_v2",
    "pixel_histograms",
    "pxap",
    "pxap_from_histograms",
    "scores_from_ious",
    "threshold_grid",
]

CONVENTIONS = ("wsolevaluation", "pixel-edge")
IOU_LEVELS = (0.3, 0.5, 0.7)


def threshold_grid(cam_curve_interval: float = 0.001) -> np.ndarray:
    """The reference's map thresholds, built as it builds them (not rounded:
    0.009000000000000001 and all): ``numpy.arange(0, 1, cam_curve_interval)``. 0.001 is
    the default of its ``config.py`` and ``evaluate_wsol``, 0.01 of its ``evaluation.py``
    command line (ten times fewer contour searches; globalpool compare uses it)."""
    if not 0 < cam_curve_interval < 1:
        raise ValueError(f"cam_curve_interval must be in (0, 1); got {cam_curve_interval}")
    return np.arange(0, 1, cam_curve_interval)


WSOL_THRESHOLDS = threshold_grid(0.001)


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _check_maps(maps) -> np.ndarray:
    arr = _numpy(maps).astype(np.float64, copy=False)
    if arr.ndim != 3:
        raise ValueError(f"maps must be (N, H, W); got shape {arr.shape}")
    if arr.size and (np.isnan(arr).any() or arr.min() < 0 or arr.max() > 1):
        raise ValueError(
            f"maps must be in [0, 1] without NaN; got min {np.nanmin(arr):.4g}, "
            f"max {np.nanmax(arr):.4g}"
        )
    return arr


def _check_boxes(boxes, n: int) -> list[np.ndarray]:
    """N arrays (K_i, 4) of pixel-edge boxes."""
    if isinstance(boxes, (np.ndarray, torch.Tensor)) and _numpy(boxes).ndim == 2:
        arr = _numpy(boxes).astype(np.float64)
        if arr.shape != (n, 4):
            raise ValueError(f"boxes must be ({n}, 4) to match the maps; got {arr.shape}")
        return [row[None] for row in arr]
    if not isinstance(boxes, Sequence) and not isinstance(boxes, np.ndarray):
        raise TypeError(f"boxes must be an (N, 4) array or N (K, 4) arrays; got {type(boxes)}")
    if len(boxes) != n:
        raise ValueError(f"got boxes for {len(boxes)} images; the maps are {n}")
    out = [_numpy(b).astype(np.float64).reshape(-1, 4) for b in boxes]
    if any(len(b) == 0 for b in out):
        raise ValueError("every image needs at least one ground-truth box")
    return out


def _thresholds(thresholds) -> np.ndarray:
    t = WSOL_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or not len(t) or t.min() < 0 or t.max() > 1:
        raise ValueError("thresholds must be a non-empty 1-D sequence of values in [0, 1]")
    return t


def _inclusive_ious(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(P, G) IoUs of inclusive integer boxes, as the reference's calculate_multiple_iou."""
    p, g = pred[:, None, :], gt[None, :, :]
    iw = np.maximum(0, np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]) + 1)
    inter = iw * ih
    area_p = (p[..., 2] - p[..., 0] + 1) * (p[..., 3] - p[..., 1] + 1)
    area_g = (g[..., 2] - g[..., 0] + 1) * (g[..., 3] - g[..., 1] + 1)
    union = area_p + area_g - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _edge_ious(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(P, G) IoUs of pixel-edge boxes by exact area."""
    p, g = pred[:, None, :], gt[None, :, :]
    iw = np.clip(np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]), 0, None)
    ih = np.clip(np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]), 0, None)
    inter = iw * ih
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_g = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
    union = area_p + area_g - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _wsol_image(score: np.ndarray, gt: np.ndarray, thresholds: np.ndarray):
    """(T,), (T,): best IoU of the largest contour's box and of any contour's box."""
    import cv2

    h, w = score.shape
    quantised = (score * 255).astype(np.uint8)
    cutoffs = (thresholds * quantised.max()).astype(np.int64)  # int(t * max_k)
    # The pixels kept change only where a cutoff passes a value the map holds: one
    # contour search per distinct set of kept pixels.
    keys = np.searchsorted(np.unique(quantised), cutoffs, side="right")
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    boxes, starts, largest_at = [], [], []
    for cutoff in cutoffs[first]:
        _, binary = cv2.threshold(quantised, int(cutoff), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
        starts.append(len(boxes))
        if not contours:  # the reference's box for "nothing kept": pixel (0, 0)
            largest_at.append(len(boxes))
            boxes.append((0, 0, 0, 0))
            continue
        # max() keeps the first of equal areas, as the reference's max(..., key=contourArea)
        areas = [cv2.contourArea(c) for c in contours]
        largest_at.append(len(boxes) + max(range(len(areas)), key=areas.__getitem__))
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            # (x, y, x + w, y + h) read as inclusive, clamped to the last pixel
            boxes.append((x, y, min(x + bw, w - 1), min(y + bh, h - 1)))
    # the reference is given (x0, y0, x1 - 1, y1 - 1): the same pixels, inclusive
    gt_inclusive = np.stack(
        [np.ceil(gt[:, 0] - 0.5), np.ceil(gt[:, 1] - 0.5),
         np.floor(gt[:, 2] - 0.5), np.floor(gt[:, 3] - 0.5)], axis=1
    )  # fmt: skip
    ious = _inclusive_ious(np.array(boxes, dtype=np.float64), gt_inclusive).max(axis=1)
    return ious[largest_at][inverse], np.maximum.reduceat(ious, starts)[inverse]


def _pixel_edge_image(score: np.ndarray, gt: np.ndarray, thresholds: np.ndarray):
    """(T,), (T,): globalpool's float convention with 8-connected regions."""
    from scipy import ndimage

    largest, every = np.empty(len(thresholds)), np.empty(len(thresholds))
    top = score.max()
    for i, t in enumerate(thresholds):
        labels, count = ndimage.label(score >= t * top, structure=np.ones((3, 3), bool))
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        boxes = np.array(
            [(c.start, r.start, c.stop, r.stop) for r, c in ndimage.find_objects(labels)],
            dtype=np.float64,
        ).reshape(-1, 4)
        ious = _edge_ious(boxes, gt).max(axis=1)
        largest[i] = ious[int(np.argmax(sizes))]
        every[i] = ious.max()
    return largest, every


def box_ious(maps, boxes, thresholds=None, *, convention: str = "wsolevaluation"):
    """Each image's best box IoU at every threshold: what MaxBoxAcc and MaxBoxAccV2 are
    computed from (rows of several batches can be concatenated).

    Args:
        maps: (N, H, W) maps in [0, 1] (tensor or array).
        boxes: (N, 4) pixel-edge boxes, or N arrays (K_i, 4) for several objects.
        thresholds: map thresholds (fractions of the map's maximum); None: the reference's
            1000 (:data:`WSOL_THRESHOLDS`).
        convention: ``"wsolevaluation"`` (the reference's, see the module) or
            ``"pixel-edge"``.

    Returns:
        ``(largest, every)``, float64 (N, T) each: at threshold t, the best IoU with any
        true box of the largest region's box (MaxBoxAcc) and of any region's box
        (MaxBoxAccV2).

    Example:
        >>> m = np.zeros((1, 8, 8)); m[0, 2:5, 1:4] = 1.0
        >>> largest, every = box_ious(m, np.array([[1.0, 2.0, 4.0, 5.0]]), [0.5])
        >>> float(largest[0, 0]), float(every[0, 0])
        (1.0, 1.0)
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}")
    arr = _check_maps(maps)
    gts = _check_boxes(boxes, len(arr))
    t = _thresholds(thresholds)
    one = _wsol_image if convention == "wsolevaluation" else _pixel_edge_image
    rows = [one(m, g, t) for m, g in zip(arr, gts, strict=True)]
    largest = np.array([r[0] for r in rows]).reshape(len(arr), len(t))
    every = np.array([r[1] for r in rows]).reshape(len(arr), len(t))
    return largest, every


def box_sweep(ious: np.ndarray, thresholds=None, levels=IOU_LEVELS) -> dict:
    """Box accuracy at every threshold and IoU level, from :func:`box_ious`' rows.

    Returns:
        dict with, for each level (key ``"0.5"`` etc.): ``correct`` (T,) image counts,
        ``accuracy`` (T,) fractions, ``best`` (the maximum over thresholds, a fraction in
        [0, 1]) and ``best_threshold`` (the first threshold reaching it); and
        ``n_images``, ``thresholds``.
    """
    t = _thresholds(thresholds)
    ious = np.asarray(ious, dtype=np.float64)
    if ious.ndim != 2 or ious.shape[1] != len(t):
        raise ValueError(f"ious must be (N, {len(t)}); got {ious.shape}")
    n = len(ious)
    out: dict = {"n_images": n, "thresholds": t.tolist()}
    for level in levels:
        correct = (ious >= level).sum(axis=0)
        best = int(np.argmax(correct))
        out[str(level)] = {
            "correct": correct,
            "accuracy": correct / max(n, 1),
            "best": float(correct[best] / n) if n else float("nan"),
            "best_threshold": float(t[best]),
        }
    return out


def scores_from_ious(largest: np.ndarray, every: np.ndarray, thresholds=None) -> dict:
    """MaxBoxAcc, MaxBoxAccV2 and the box accuracy at threshold 0.2 from the rows of
    :func:`box_ious` of every image (several batches concatenated), at once.

    Returns:
        dict: ``max_box_acc`` (IoU 0.5, largest region), ``best_threshold``,
        ``max_box_acc_by_iou``, ``max_box_acc_v2`` (every region, mean over
        :data:`IOU_LEVELS`), ``max_box_acc_v2_by_iou``, ``box_acc_at_0.2`` (the grid
        threshold nearest 0.2, IoU 0.5, largest region); fractions in [0, 1].
    """
    t = _thresholds(thresholds)
    v1, v2 = box_sweep(largest, t), box_sweep(every, t)
    by_iou_v2 = {key: v2[key]["best"] for key in map(str, IOU_LEVELS)}
    return {
        "max_box_acc": v1["0.5"]["best"],
        "best_threshold": v1["0.5"]["best_threshold"],
        "max_box_acc_by_iou": {key: v1[key]["best"] for key in map(str, IOU_LEVELS)},
        "max_box_acc_v2": float(np.mean(list(by_iou_v2.values()))),
        "max_box_acc_v2_by_iou": by_iou_v2,
        "box_acc_at_0.2": float(v1["0.5"]["accuracy"][int(np.argmin(np.abs(t - 0.2)))]),
    }


def max_box_acc(maps, boxes, thresholds=None, *, iou: float = 0.5,
                convention: str = "wsolevaluation") -> dict:  # fmt: skip
    """MaxBoxAcc: the best box accuracy over thresholds of the largest region's box.

    Returns:
        dict: ``max_box_acc`` (fraction in [0, 1]), ``best_threshold``, ``by_iou`` (the
        same maximum at IoU 0.3, 0.5 and 0.7), ``n_images``.

    Example:
        >>> m = np.zeros((2, 8, 8)); m[:, 2:5, 1:4] = 1.0
        >>> r = max_box_acc(m, np.array([[1.0, 2.0, 4.0, 5.0], [5.0, 5.0, 8.0, 8.0]]))
        >>> r["max_box_acc"]
        0.5
    """
    largest, _ = box_ious(maps, boxes, thresholds, convention=convention)
    sweep = box_sweep(largest, thresholds, sorted({*IOU_LEVELS, iou}))
    return {
        "max_box_acc": sweep[str(iou)]["best"],
        "best_threshold": sweep[str(iou)]["best_threshold"],
        "by_iou": {str(u): sweep[str(u)]["best"] for u in IOU_LEVELS},
        "n_images": sweep["n_images"],
    }


def max_box_acc_v2(maps, boxes, thresholds=None, *, levels=IOU_LEVELS,
                   convention: str = "wsolevaluation") -> dict:  # fmt: skip
    """MaxBoxAccV2: boxes from every region, the best accuracy over thresholds at each IoU
    level, averaged over the levels.

    Returns:
        dict: ``max_box_acc_v2`` (fraction in [0, 1]), ``by_iou`` (level -> best
        accuracy), ``best_threshold`` (level -> first threshold reaching it),
        ``n_images``.
    """
    _, every = box_ious(maps, boxes, thresholds, convention=convention)
    sweep = box_sweep(every, thresholds, levels)
    by_iou = {str(u): sweep[str(u)]["best"] for u in levels}
    return {
        "max_box_acc_v2": float(np.mean(list(by_iou.values()))),
        "by_iou": by_iou,
        "best_threshold": {str(u): sweep[str(u)]["best_threshold"] for u in levels},
        "n_images": sweep["n_images"],
    }


def pixel_histograms(maps, masks, thresholds=None) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of map scores at object and at background pixels over the threshold
    bins ``[t_0, t_1), ..., [t_last, 1), [1, 2), [2, 3)`` (the reference's bins), to be
    summed over batches and passed to :func:`pxap_from_histograms`.

    Input shape: maps (N, H, W) in [0, 1]; masks (N, H, W) bool. Output: two (T + 2,)
    int64 arrays (object pixels, background pixels).
    """
    arr = _check_maps(maps)
    gt = _numpy(masks).astype(bool)
    if gt.shape != arr.shape:
        raise ValueError(f"masks must be {arr.shape} to match the maps; got {gt.shape}")
    edges = np.append(_thresholds(thresholds), [1.0, 2.0, 3.0])
    true_hist, _ = np.histogram(arr[gt], bins=edges)
    false_hist, _ = np.histogram(arr[~gt], bins=edges)
    return true_hist.astype(np.int64), false_hist.astype(np.int64)


def pxap_from_histograms(true_hist: np.ndarray, false_hist: np.ndarray) -> float:
    """PxAP (fraction in [0, 1]) from summed :func:`pixel_histograms`: precision and
    recall of "score >= threshold" at every threshold, highest first, and the area
    ``sum precision_i (recall_i - recall_(i-1))`` where some pixel is predicted."""
    tp = np.asarray(true_hist, dtype=np.float64)[::-1].cumsum()
    fp = np.asarray(false_hist, dtype=np.float64)[::-1].cumsum()
    if tp[-1] <= 0:
        raise ValueError("PxAP needs object pixels in the masks; there are none")
    predicted = tp + fp
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = tp / tp[-1]
    return float((precision[1:] * np.diff(recall))[predicted[1:] > 0].sum())


def pxap(maps, masks, thresholds=None) -> float:
    """PxAP of a set of maps against their (N, H, W) bool masks, a fraction in [0, 1].

    Example:
        >>> m = np.array([[[0.9, 0.8], [0.1, 0.0]]]); mask = m > 0.5
        >>> pxap(m, mask)
        1.0
    """
    return pxap_from_histograms(*pixel_histograms(maps, masks, thresholds))
