"""Weakly supervised localization scores of class activation maps.

A classifier trained only on labels localizes an object if its class map is high on the
object. Three scores, all on maps in [0, 1] as :func:`~globalpool.analysis.cam.compute_cam`
returns them:

- box accuracy (Zhou et al. 2016): threshold the map at ``threshold * max`` (default 20%),
  take the largest 8-connected region, its bounding box; correct if IoU >= 0.5 with the
  ground-truth box;
- pointing game (Zhang et al. 2016, without tolerance): the map's maximum lies inside the
  object (its mask if given, else its box);
- mask IoU: IoU of the whole thresholded map with the ground-truth mask (or the box
  rasterised, when there is no mask).

These are scores at one threshold, in globalpool's pixel-edge convention. The threshold-
free metrics of Choe et al. 2020 (MaxBoxAcc, MaxBoxAccV2, PxAP), computed as their
reference implementation computes them, are in :mod:`globalpool.analysis.wsol`.

Boxes are ``(x0, y0, x1, y1)`` in pixel-edge coordinates: pixel column ``i`` spans
``[i, i + 1)``, so a region covering columns 3..5 has ``x0 = 3, x1 = 6``. A pixel belongs
to a box when its centre ``(i + 0.5, j + 0.5)`` lies inside it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from globalpool.analysis.cam import cam_method, compute_cam
from globalpool.analysis.images import normalize_images

__all__ = [
    "box_iou",
    "box_to_mask",
    "localization_metrics",
    "localization_scores",
    "map_to_box",
    "map_to_boxes",
    "mask_iou",
    "point_in_object",
    "threshold_map",
]

# 8-connectivity, as contour-based box extraction (OpenCV findContours) effectively uses.
_EIGHT = np.ones((3, 3), dtype=bool)


def _as_map(cam) -> np.ndarray:
    arr = cam.detach().cpu().numpy() if isinstance(cam, torch.Tensor) else np.asarray(cam)
    if arr.ndim != 2:
        raise ValueError(f"a map must be 2-D (H, W); got shape {arr.shape}")
    return arr.astype(np.float64, copy=False)


def _as_box(box) -> np.ndarray:
    arr = box.detach().cpu().numpy() if isinstance(box, torch.Tensor) else np.asarray(box)
    arr = arr.astype(np.float64).reshape(-1)
    if arr.shape != (4,):
        raise ValueError(f"a box must be (x0, y0, x1, y1); got shape {arr.shape}")
    return arr


def _as_mask(mask, shape: tuple[int, int]) -> np.ndarray:
    arr = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if arr.shape != shape:
        raise ValueError(f"mask shape {arr.shape} differs from the map's {shape}")
    return arr.astype(bool, copy=False)


def _is_constant(cam: np.ndarray) -> bool:
    return bool(cam.max() - cam.min() <= 1e-12)


def threshold_map(cam, threshold: float = 0.2) -> np.ndarray:
    """Pixels at or above ``threshold * max`` of the map.

    Input shape: (H, W) map in [0, 1]. Output shape: (H, W) bool. A constant (all-zero)
    map gives all True: it singles out nothing, so the whole image is the region.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1]; got {threshold}")
    arr = _as_map(cam)
    return arr >= threshold * arr.max()


def map_to_box(cam, threshold: float = 0.2) -> tuple[float, float, float, float]:
    """Bounding box of the largest 8-connected region of the thresholded map.

    Args:
        cam: (H, W) map in [0, 1] (tensor or array).
        threshold: fraction of the map's maximum (Zhou et al. use 0.2).

    Returns:
        ``(x0, y0, x1, y1)`` in pixel-edge coordinates (x1, y1 exclusive). Ties in region
        size go to the region found first in row-major order.

    Example:
        >>> m = np.zeros((6, 8)); m[1:3, 2:5] = 1.0; m[5, 7] = 0.9
        >>> map_to_box(m)
        (2.0, 1.0, 5.0, 3.0)
    """
    from scipy import ndimage

    region = threshold_map(cam, threshold)
    labels, count = ndimage.label(region, structure=_EIGHT)
    if count == 0:  # cannot happen (the maximum is always kept), but stay total
        h, w = region.shape
        return (0.0, 0.0, float(w), float(h))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    rows, cols = np.nonzero(labels == int(np.argmax(sizes)) + 1)
    return (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))


def map_to_boxes(cam, threshold: float = 0.2) -> list[tuple[float, float, float, float]]:
    """Bounding boxes of every 8-connected region of the thresholded map (largest first),
    with globalpool's pixel-edge convention (see :mod:`globalpool.analysis.wsol`).

    Example:
        >>> m = np.zeros((6, 8)); m[1:3, 2:5] = 1.0; m[5, 7] = 0.9
        >>> map_to_boxes(m)
        [(2.0, 1.0, 5.0, 3.0), (7.0, 5.0, 8.0, 6.0)]
    """
    boxes, sizes = _region_boxes(threshold_map(cam, threshold))
    return [tuple(float(v) for v in boxes[k]) for k in np.argsort(-sizes, kind="stable")]


def _region_boxes(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 4) boxes ``(x0, y0, x1, y1)`` and (K,) pixel counts of the 8-connected regions."""
    from scipy import ndimage

    labels, count = ndimage.label(region, structure=_EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    slices = ndimage.find_objects(labels)
    boxes = np.array([(c.start, r.start, c.stop, r.stop) for r, c in slices], dtype=float)
    return boxes.reshape(-1, 4), sizes


def box_iou(box_a, box_b) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 if both are empty).

    Example:
        >>> box_iou((0, 0, 2, 2), (1, 0, 3, 2))
        0.3333333333333333
    """
    a, b = _as_box(box_a), _as_box(box_b)
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return float(inter / union) if union > 0 else 0.0


def box_to_mask(box, height: int, width: int) -> np.ndarray:
    """Rasterise a box: the pixels whose centre lies inside it.

    Output shape: (height, width) bool.

    Example:
        >>> box_to_mask((1, 0, 3, 1), 2, 4).astype(int).tolist()
        [[0, 1, 1, 0], [0, 0, 0, 0]]
    """
    x0, y0, x1, y1 = _as_box(box)
    cy = np.arange(height) + 0.5
    cx = np.arange(width) + 0.5
    return ((cy >= y0) & (cy <= y1))[:, None] & ((cx >= x0) & (cx <= x1))[None, :]


def point_in_object(cam, box=None, mask=None) -> bool:
    """Pointing game for one map: is its maximum inside the object?

    Args:
        cam: (H, W) map.
        box: ground-truth ``(x0, y0, x1, y1)``; used when ``mask`` is None.
        mask: ground-truth (H, W) bool mask; preferred when given (the exact object).

    Returns:
        True if the first (row-major) maximum lies in the mask, or its pixel centre in the
        box. A constant map has no maximum to point with and scores False.
    """
    arr = _as_map(cam)
    if _is_constant(arr):
        return False
    y, x = np.unravel_index(int(np.argmax(arr)), arr.shape)
    if mask is not None:
        return bool(_as_mask(mask, arr.shape)[y, x])
    if box is None:
        raise ValueError("point_in_object needs a box or a mask")
    x0, y0, x1, y1 = _as_box(box)
    return bool(x0 <= x + 0.5 <= x1 and y0 <= y + 0.5 <= y1)


def mask_iou(cam, mask, threshold: float = 0.2) -> float:
    """IoU of the thresholded map (all regions) with a ground-truth (H, W) bool mask."""
    pred = threshold_map(cam, threshold)
    gt = _as_mask(mask, pred.shape)
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else 0.0


def localization_metrics(
    maps,
    *,
    boxes=None,
    masks=None,
    threshold: float = 0.2,
    iou_threshold: float = 0.5,
) -> dict:
    """Localization scores of a batch of maps, per image and averaged.

    Args:
        maps: (N, H, W) maps in [0, 1].
        boxes: optional (N, 4) ground-truth boxes ``(x0, y0, x1, y1)``.
        masks: optional (N, H, W) bool ground-truth masks. At least one of boxes/masks.
        threshold: map threshold as a fraction of each map's maximum.
        iou_threshold: box IoU at which a box counts as correct.

    Returns:
        dict of numpy arrays, one entry per image: ``pred_boxes`` (N, 4), ``box_iou`` (N,)
        and ``box_correct`` (N,) bool (only with boxes), ``pointing`` (N,) bool,
        ``mask_iou`` (N,) (against the mask, else the rasterised box); and the means as
        floats: ``box_acc`` (with boxes), ``pointing_acc``, ``mean_mask_iou``.

    Example:
        >>> m = np.zeros((1, 4, 4)); m[0, 1:3, 1:3] = 1.0
        >>> r = localization_metrics(m, boxes=np.array([[1.0, 1.0, 3.0, 3.0]]))
        >>> r["box_acc"], r["pointing_acc"], r["mean_mask_iou"]
        (1.0, 1.0, 1.0)
    """
    arr = maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    if arr.ndim != 3:
        raise ValueError(f"maps must be (N, H, W); got shape {arr.shape}")
    n, h, w = arr.shape
    if boxes is None and masks is None:
        raise ValueError("localization_metrics needs ground-truth boxes or masks")
    if boxes is not None:
        boxes = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else boxes
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.shape != (n, 4):
            raise ValueError(f"boxes must be ({n}, 4) to match the maps; got {boxes.shape}")
    if masks is not None:
        masks = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else masks
        masks = np.asarray(masks, dtype=bool)
        if masks.shape != (n, h, w):
            raise ValueError(f"masks must be {(n, h, w)} to match the maps; got {masks.shape}")

    out: dict = {
        "pointing": np.array(
            [
                point_in_object(
                    arr[i],
                    box=None if boxes is None else boxes[i],
                    mask=None if masks is None else masks[i],
                )
                for i in range(n)
            ],
            dtype=bool,
        )
    }
    gt_masks = masks if masks is not None else [box_to_mask(b, h, w) for b in boxes]
    out["mask_iou"] = np.array([mask_iou(arr[i], gt_masks[i], threshold) for i in range(n)])
    if boxes is not None:
        pred = np.array([map_to_box(arr[i], threshold) for i in range(n)]).reshape(n, 4)
        out["pred_boxes"] = pred
        out["box_iou"] = np.array([box_iou(pred[i], boxes[i]) for i in range(n)])
        out["box_correct"] = out["box_iou"] >= iou_threshold
        out["box_acc"] = float(out["box_correct"].mean()) if n else float("nan")
    out["pointing_acc"] = float(out["pointing"].mean()) if n else float("nan")
    out["mean_mask_iou"] = float(out["mask_iou"].mean()) if n else float("nan")
    return out


def localization_scores(
    model: nn.Module,
    imageset,
    mean,
    std,
    batch_size: int = 64,
    *,
    threshold: float = 0.2,
    iou_threshold: float = 0.5,
    target: str = "label",
    device: str | torch.device | None = None,
    method: str | None = None,
    layer: str | None = None,
) -> dict:
    """Localization scores of a model's CAMs over an image set with boxes and/or masks.

    Args:
        model: a ``Classifier``; the map method is :func:`cam_method` (CAM or Grad-CAM).
        imageset: an ``ImageSet`` (``images`` uint8 (N, C, H, W), ``labels`` (N,), and
            ``boxes`` (N, 4) and/or ``masks`` (N, H, W)).
        mean, std: per-channel normalisation, in [0, 1] units.
        batch_size: images per ``compute_cam`` call.
        threshold, iou_threshold: as in :func:`localization_metrics`.
        target: ``"label"`` maps the true class (localization alone, "GT-known"),
            ``"pred"`` the predicted class.
        device: where to run; default the model's parameters' device.
        method, layer: as in :func:`compute_cam` (None: :func:`cam_method`'s choice at the
            last feature map).

    Returns:
        dict of floats: ``box_acc`` (IoU >= iou_threshold; NaN without boxes),
        ``top1_loc`` (correct class and correct box; NaN without boxes),
        ``pointing_acc``, ``mask_iou`` (mean), ``accuracy`` (top-1 classification), and
        ``n_images``, ``threshold``, ``target``, ``cam_method``.

    Example:
        >>> scores = localization_scores(model, ds.test, ds.mean, ds.std)  # doctest: +SKIP
        >>> sorted(scores)[:3]  # doctest: +SKIP
        ['accuracy', 'box_acc', 'cam_method']
    """
    if target not in ("label", "pred"):
        raise ValueError(f"target must be 'label' or 'pred'; got {target!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    boxes = getattr(imageset, "boxes", None)
    masks = getattr(imageset, "masks", None)
    if boxes is None and masks is None:
        raise ValueError("localization_scores needs an image set with boxes or masks")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    images = torch.as_tensor(imageset.images)
    labels = torch.as_tensor(imageset.labels).long()
    n = len(labels)

    parts: dict[str, list] = {"pointing": [], "mask_iou": [], "box_correct": [], "correct": []}
    for start in range(0, n, batch_size):
        sl = slice(start, min(start + batch_size, n))
        x = normalize_images(images[sl], mean, std).to(device)
        y = labels[sl].to(device)
        logits, maps = compute_cam(
            model, x, y if target == "label" else None, method=method, layer=layer
        )
        res = localization_metrics(
            maps,
            boxes=None if boxes is None else torch.as_tensor(boxes[sl]),
            masks=None if masks is None else torch.as_tensor(masks[sl]),
            threshold=threshold,
            iou_threshold=iou_threshold,
        )
        parts["pointing"].append(res["pointing"])
        parts["mask_iou"].append(res["mask_iou"])
        if boxes is not None:
            parts["box_correct"].append(res["box_correct"])
        parts["correct"].append((logits.argmax(1) == y).cpu().numpy())

    def mean_of(key: str) -> float:
        return float(np.concatenate(parts[key]).mean()) if parts[key] else float("nan")

    correct = np.concatenate(parts["correct"]) if parts["correct"] else np.zeros(0, bool)
    if boxes is not None and n:
        top1_loc = float((np.concatenate(parts["box_correct"]) & correct).mean())
    else:
        top1_loc = float("nan")
    return {
        "box_acc": mean_of("box_correct"),
        "top1_loc": top1_loc,
        "pointing_acc": mean_of("pointing"),
        "mask_iou": mean_of("mask_iou"),
        "accuracy": float(correct.mean()) if n else float("nan"),
        "n_images": int(n),
        "threshold": float(threshold),
        "target": target,
        "cam_method": method or cam_method(model),
    }
