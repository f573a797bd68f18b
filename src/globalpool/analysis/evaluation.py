"""One finished run scored for the three claims of global pooling, kept beside the run.

Network in Network (Lin et al. 2013, section 3.2) argues that global average pooling
(1) has no parameters, so it avoids overfitting at that layer, and (2) sums out spatial
information, so it is more robust to translations of the input; CAM (Zhou et al. 2016)
adds (3): its class maps localize the object. :func:`evaluate_run` measures each on one
run, in eval mode, from its saved weights:

- ``train_acc`` and ``test_acc``: accuracy on the images it trained on and on the test
  split; their difference is the generalization gap (the running accuracy a training
  loop reports is taken with dropout on, and understates the fit of a dropout head);
- ``shifted_acc``: accuracy on the test items placed at positions the training split
  never used (data sets with ``test_positions="shifted"``: ``fashion_canvas``);
- ``max_box_acc`` (the best box accuracy over map thresholds, Choe et al. 2020, as
  their reference code computes it; with ``max_box_acc_v2`` and, where the set has
  masks, ``pxap``) and ``pointing_acc`` (the map's maximum inside the object's mask, or
  box where there is no mask) of the head's own map (CAM / class maps; Grad-CAM for FC
  heads), for the true class, on the test split's true boxes. ``globalpool reproduce``
  scores its runs with the same :func:`accuracy` and :func:`localization_sweep`.

The record goes to ``<run>/evaluation.json`` and is reused while the run's weights are
unchanged (it stores the checkpoint's sha256).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path

import numpy as np
import torch

from globalpool.analysis.cam import cam_method, compute_cam
from globalpool.analysis.images import normalize_images
from globalpool.analysis.localization import localization_metrics
from globalpool.analysis.wsol import (
    box_ious,
    pixel_histograms,
    pxap_from_histograms,
    scores_from_ious,
    threshold_grid,
)
from globalpool.atomic import atomic_write_text
from globalpool.data import dataset_entry, load_dataset
from globalpool.models.io import load_run
from globalpool.train.config import TrainConfig
from globalpool.train.setup import load_data

__all__ = [
    "EVALUATION_FILE", "accuracy", "describe_evaluation", "evaluate_run", "localization_sweep",
]  # fmt: skip

EVALUATION_FILE = "evaluation.json"
_VERSION = 4  # bump when a score's definition changes: older records are recomputed
# (2: the pointing game against the item's mask, not its box; 3: MaxBoxAcc as
# wsolevaluation computes it, MaxBoxAccV2 and PxAP added; 4: on the 0.01 grid)


@torch.no_grad()
def accuracy(model, imageset, mean, std, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (eval mode, no augmentation) on an ImageSet."""
    model.eval()
    correct = 0
    for start in range(0, len(imageset), batch_size):
        x = normalize_images(imageset.images[start : start + batch_size], mean, std)
        correct += int((model(x).argmax(1) == imageset.labels[start : start + batch_size]).sum())
    return correct / max(len(imageset), 1)


def localization_sweep(
    model,
    imageset,
    mean,
    std,
    *,
    limit: int | None = None,
    batch_size: int = 128,
    convention: str = "wsolevaluation",
    cam_curve_interval: float = 0.001,
) -> dict:
    """Localization of the head's own map (the true class's; CAM / class maps, Grad-CAM
    for FC heads) on the first ``limit`` images, by Choe et al. 2020's metrics as their
    reference implementation computes them (:mod:`globalpool.analysis.wsol`):
    MaxBoxAcc (largest region, IoU 0.5, best of 1000 thresholds), MaxBoxAccV2 (every
    region, IoU 0.3/0.5/0.7), PxAP against the masks where the set has them; and the box
    accuracy at threshold 0.2 (Zhou et al.'s CAM threshold, same conventions), the
    pointing game and the mask IoU at 0.2 (against the masks, else the boxes).
    ``cam_curve_interval``: the threshold grid's step (the reference's default 0.001; 0.01,
    its command line's, costs a tenth of the contour searches)."""
    grid = threshold_grid(cam_curve_interval)
    n = len(imageset) if limit is None else min(limit, len(imageset))
    largest, every, pointing, miou, hists = [], [], [], [], []
    for start in range(0, n, batch_size):
        sl = slice(start, min(start + batch_size, n))
        x = normalize_images(imageset.images[sl], mean, std)
        _, maps = compute_cam(model, x, imageset.labels[sl])
        ious = box_ious(maps, imageset.boxes[sl], grid, convention=convention)
        largest.append(ious[0])
        every.append(ious[1])
        masks = None if imageset.masks is None else imageset.masks[sl]
        if masks is not None:
            hists.append(pixel_histograms(maps, masks, grid))
        res = localization_metrics(maps, boxes=imageset.boxes[sl], masks=masks, threshold=0.2)
        pointing.append(res["pointing"])
        miou.append(res["mask_iou"])
    return {
        "method": cam_method(model),
        "convention": convention,
        "cam_curve_interval": cam_curve_interval,
        **scores_from_ious(np.concatenate(largest), np.concatenate(every), grid),
        "pxap": pxap_from_histograms(*np.sum(hists, axis=0)) if hists else None,
        "pointing_acc": float(np.concatenate(pointing).mean()),
        "mask_iou": float(np.concatenate(miou).mean()),
        "n_images": n,
    }


def _weights_digest(run_dir: Path, which: str) -> str:
    target = (run_dir / "checkpoints" / f"{which}.safetensors").resolve()
    return hashlib.sha256(target.read_bytes()).hexdigest()


def describe_evaluation(record: dict) -> str:
    """One line: ``train 97.1%  test 78.0%  gap +19.1  shifted 75.2%  MaxBoxAcc 60.2%``."""
    parts = [f"train {100 * record['train_acc']:.1f}%", f"test {100 * record['test_acc']:.1f}%",
             f"gap {100 * record['gap']:+.1f}"]  # fmt: skip
    if record.get("shifted_acc") is not None:
        parts.append(f"shifted {100 * record['shifted_acc']:.1f}%")
    if record.get("max_box_acc") is not None:
        parts.append(f"MaxBoxAcc {100 * record['max_box_acc']:.1f}% ({record['cam_method']})")
    return "  ".join(parts) + " (eval mode)"


def evaluate_run(run_dir: str | os.PathLike, *, which: str = "best", loc_images: int = 500) -> dict:
    """Scores of a finished run for the overfitting, translation and localization claims.

    Args:
        run_dir: a finished run directory (``globalpool train`` or ``compare``).
        which: ``best`` or ``last`` checkpoint (with no validation split they agree).
        loc_images: test images whose maps are scored for localization.

    Returns:
        dict: ``train_acc``, ``test_acc``, ``gap`` (train - test), ``shifted_acc``
        (None where the data set has no shifted split), ``max_box_acc``,
        ``max_box_acc_threshold``, ``max_box_acc_v2``, ``pxap`` (None without masks),
        ``pointing_acc``, ``cam_method`` (None without boxes),
        ``params_head``, and what they were computed on. Also written to
        ``run_dir/evaluation.json``, which later calls reuse.
    """
    run_dir = Path(run_dir)
    digest = _weights_digest(run_dir, which)
    record_path = run_dir / EVALUATION_FILE
    if record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("weights_sha256") == digest and record.get("version") == _VERSION:
            return record
    config = TrainConfig.load(run_dir / "config.json")
    model, _ = load_run(run_dir, which=which)
    model.eval()
    mean, std = model.mean, model.std
    data, train_set, _ = load_data(config)  # the images the run trained on, as train() split them
    train_acc = accuracy(model, train_set, mean, std)
    test_acc = accuracy(model, data.test, mean, std)
    record = {
        "version": _VERSION, "weights_sha256": digest, "which": which,
        "train_acc": train_acc, "test_acc": test_acc, "gap": train_acc - test_acc,
        "train_images": len(train_set), "test_images": len(data.test),
        "params_head": sum(p.numel() for p in model.head.parameters()),
        "shifted_acc": None, "max_box_acc": None, "max_box_acc_threshold": None,
        "max_box_acc_v2": None, "pxap": None, "pointing_acc": None, "cam_method": None,
        "cam_curve_interval": None, "loc_images": 0,
    }  # fmt: skip
    loader = dataset_entry(config.dataset).loader
    if "test_positions" in inspect.signature(loader).parameters:
        kwargs = {**config.dataset_kwargs, "test_positions": "shifted"}
        shifted = load_dataset(config.dataset, **kwargs).test
        record["shifted_acc"] = accuracy(model, shifted, mean, std)
    if data.test.boxes is not None and loc_images > 0:
        # the reference's 0.01 grid (its command line's): a tenth of the contour searches
        # of 0.001, in the main job's 3-minute budget
        loc = localization_sweep(model, data.test, mean, std, limit=loc_images,
                                 cam_curve_interval=0.01)  # fmt: skip
        record.update(max_box_acc=loc["max_box_acc"], max_box_acc_threshold=loc["best_threshold"],
                      max_box_acc_v2=loc["max_box_acc_v2"], pxap=loc["pxap"],
                      cam_curve_interval=loc["cam_curve_interval"],
                      pointing_acc=loc["pointing_acc"], cam_method=loc["method"],
                      loc_images=loc["n_images"])  # fmt: skip
    atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
    return record
