"""A finished run's ``summary.json`` (keys in ARCHITECTURE.md): :func:`build_summary`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch

from globalpool.atomic import atomic_write_text
from globalpool.train.console import device_name
from globalpool.train.resume import RunState
from globalpool.train.setup import RunSetup


@dataclass
class FinalScores:
    """The final weights' scores: the test set (and the validation split) after training."""

    test_acc: float
    test_loss: float
    test_acc_tta: float | None  # with the config's test-time augmentation; None without
    val_acc_tta: float | None
    final_eval_s: float  # the final test evaluation (with TTA when set)


def build_summary(
    run: RunSetup, state: RunState, scores: FinalScores, *, wall_time_s: float,
    images_per_s: float,
) -> dict:  # fmt: skip
    """The summary of a run whose last epoch's metrics row is ``state.row``."""
    config, model, row = run.config, run.raw_model, state.row
    return {
        "run_dir": run.run_dir,
        "model": config.model,
        "head": model.head_kind,
        "pool": model.pool_name,
        "dataset": config.dataset,
        "params_total": int(run.params["total"]),
        "params_backbone": int(run.params["backbone"]),
        "params_head": int(run.params["head"]),
        "flops_per_image": run.flops,
        "best_val_acc": state.best_val_acc if row["val_acc"] is not None else None,
        "best_epoch": state.best_epoch,
        "final_val_acc": row["val_acc"],
        "final_val_loss": row["val_loss"],
        "final_val_acc_tta": scores.val_acc_tta,
        "test_acc": scores.test_acc,
        "test_loss": scores.test_loss,
        "tta": config.tta,
        "test_acc_tta": scores.test_acc_tta,
        "train_clock_s": state.train_clock,
        "final_eval_s": scores.final_eval_s,
        "final_train_acc": row["train_acc"],
        "final_train_loss": row["train_loss"],
        "gap": row["gap"],
        "epochs": config.epochs,
        "wall_time_s": wall_time_s,
        "images_per_s": images_per_s,
        "device": device_name(run.device),
        "amp_used": run.optim.amp,
        "world_size": run.ctx.world_size,
        "num_classes": len(run.data.classes),
        "train_images": len(run.train_set),
        "val_images": len(run.val_set),
        "test_images": len(run.data.test),
        "torch_version": torch.__version__,
        "config": config.to_dict(),
    }


def write_summary(run_dir: str, summary: dict) -> None:
    """``summary.json`` in ``run_dir``, atomically (a reader sees none or all of it)."""
    atomic_write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2))
