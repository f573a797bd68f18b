"""Where a run stands between epochs (:class:`RunState`), and resuming it from there.

A run directory holds one run: :func:`check_run_dir` refuses to start over a run (without
``overwrite``) or to resume where none is. :func:`restore` reads ``checkpoints/last`` back
into the model, optimiser, scaler and RNGs, and returns the run's :class:`RunState`.
Settings that make another run (``RESUME_FIXED_FIELDS``) are refused on resume; the rest
apply from the next epoch, with a warning on stderr (even with ``quiet``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from globalpool.train.checkpoint import CHECKPOINT_DIR, load_weights_into, read_safetensors
from globalpool.train.config import TrainConfig
from globalpool.train.distributed import DistContext
from globalpool.train.schedule import lr_at
from globalpool.train.train_state import apply_train_state, load_train_state

# Fields that may differ between a run and its resumption without changing its results.
RESUME_FREE_FIELDS = {"epochs", "quiet", "tensorboard", "stop_after_epoch", "out_dir", "device"}

# Settings that make another run: a resumed run refuses to change them.
RESUME_FIXED_FIELDS = (
    "model", "head", "pool", "head_kwargs", "pool_kwargs", "model_kwargs", "dataset",
    "dataset_kwargs", "val_fraction", "seed", "optimizer", "batch_size",
    "decay_norm_and_bias", "lookahead_every",
    # which parameters train and the optimiser's parameter groups:
    "freeze_backbone", "backbone_lr_scale", "bias_lr_scale",
)  # fmt: skip
# Optimiser hyper-parameters a resumed run takes from its new config, not from the state.
RESUME_OPTIM_KEYS = ("momentum", "nesterov", "weight_decay", "betas")

# What last.state.json must hold to resume from it.
STATE_KEYS = ("epoch", "best_val_acc", "best_epoch", "wall_time_s", "rng",
              "optim_param_groups", "optim_scalars")  # fmt: skip


@dataclass
class RunState:
    """Where a run stands: a fresh run's start, or what ``last.state.json`` recorded.

    The epoch loop advances ``best_val_acc``, ``best_epoch``, ``train_clock`` and ``row``.
    """

    start_epoch: int = 1  # the first epoch this process trains
    best_val_acc: float = -1.0
    best_epoch: int = 0
    wall_before: float = 0.0  # wall time spent by the processes before this one
    train_clock: float = 0.0  # the timed training so far (see metrics.jsonl)
    row: dict[str, Any] = field(default_factory=dict)  # the latest epoch's metrics row
    metrics: list[dict] | None = None  # the saved metrics history (resume only)
    tensors: dict[str, torch.Tensor] | None = None  # the saved state tensors (resume only)


def check_run_dir(run_dir: str, *, resume: bool, overwrite: bool) -> None:
    """Refuse to resume where no run saved an epoch, or to start over a run unasked."""
    state_json = os.path.join(run_dir, CHECKPOINT_DIR, "last.state.json")
    if resume:
        if not os.path.isfile(state_json):
            raise FileNotFoundError(
                f"cannot resume {run_dir}: no {CHECKPOINT_DIR}/last.state.json there "
                "(the run saved no epoch yet, or this is not a run directory)"
            )
    elif os.path.isfile(state_json) and not overwrite:
        raise ValueError(
            f"{run_dir} already holds a run; use --resume {run_dir} to continue it, "
            "--overwrite to start it again, or another --out"
        )


def check_resume_config(saved: dict, config: TrainConfig, ctx: DistContext) -> None:
    """Refuse changes that would make another run; say (even with --quiet) which changed
    settings the resumed run applies from here on."""
    fixed = [k for k in RESUME_FIXED_FIELDS if k in saved and saved[k] != config.to_dict()[k]]
    if fixed:
        raise ValueError(
            "cannot resume with a different "
            + ", ".join(f"{k} ({saved[k]!r} -> {config.to_dict()[k]!r})" for k in fixed)
            + ": that is another run; start it in a new --out (or --overwrite)"
        )
    changed = sorted(
        k
        for k, v in config.to_dict().items()
        if k not in RESUME_FREE_FIELDS and k in saved and saved[k] != v
    )
    if changed and ctx.is_main:
        print(
            "warning: resuming with changed settings, applied from the next epoch on: "
            + ", ".join(f"{k}: {saved[k]!r} -> {config.to_dict()[k]!r}" for k in changed)
            + " (the result will differ from an uninterrupted run)",
            file=sys.stderr,
        )


def check_state_doc(doc, path: str) -> None:
    """A damaged last.state.json names what it lacks, not just a key."""
    missing = [k for k in STATE_KEYS if not isinstance(doc, dict) or k not in doc]
    if missing:
        raise ValueError(
            f"cannot resume: {path} is damaged (no {', '.join(missing)}); restore it or "
            "start the run again with --overwrite"
        )


def epochs_note(saved: dict, config: TrainConfig, done: int, steps: int) -> str | None:
    """What a new ``epochs`` on resume does to the learning-rate schedule, or None."""
    old = saved.get("epochs")
    if old is None or old == config.epochs or config.schedule == "constant":
        return None
    kw = {"lr": config.lr, "schedule": config.schedule, "final_lr_ratio": config.final_lr_ratio,
          "warmup_steps": round(config.warmup_epochs * steps)}  # fmt: skip
    before = lr_at(done * steps - 1, old * steps, **kw)
    after = lr_at(done * steps, config.epochs * steps, **kw)
    return (
        f"note: epochs {old} -> {config.epochs}: the {config.schedule} schedule is planned "
        f"again over {config.epochs} epochs, so the learning rate goes from {before:.4g} "
        f"(end of epoch {done}) to {after:.4g} (epoch {done + 1}); to keep a finished "
        "schedule at its end instead, resume with --schedule constant --lr "
        f"{max(before, 1e-12):.4g}"
    )


def restore(
    config: TrainConfig,
    ctx: DistContext,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    steps_per_epoch: int,
    log,
) -> RunState:
    """Load ``checkpoints/last`` of ``config.out_dir`` into ``model`` (unwrapped),
    ``optimizer``, ``scaler`` and the RNGs, after checking that it fits this run; the
    new config's optimiser hyper-parameters (``RESUME_OPTIM_KEYS``) win over the saved
    ones. Returns the saved :class:`RunState`, whose ``tensors`` hold the lookahead
    average."""
    run_dir = config.out_dir
    ckpt_dir = os.path.join(run_dir, CHECKPOINT_DIR)
    state_prefix = os.path.join(ckpt_dir, "last.state")
    tensors, doc = load_train_state(state_prefix)
    check_state_doc(doc, state_prefix + ".json")
    weights_path = os.path.join(ckpt_dir, "last.safetensors")
    weights, weights_meta = read_safetensors(weights_path)
    if weights_meta.get("epoch") != str(doc["epoch"]):
        raise ValueError(
            f"{weights_path} is from epoch {weights_meta.get('epoch')} but "
            f"{state_prefix}.json from epoch {doc['epoch']}; the run was interrupted "
            "while saving and cannot be resumed exactly"
        )
    load_weights_into(model, weights, weights_path)
    saved_config = doc.get("config", {})
    check_resume_config(saved_config, config, ctx)
    wanted = [{k: g[k] for k in RESUME_OPTIM_KEYS if k in g} for g in optimizer.param_groups]
    try:
        apply_train_state(tensors, doc, optimizer=optimizer, scaler=scaler)
    except (KeyError, TypeError, IndexError, RuntimeError) as err:
        raise ValueError(
            f"cannot resume {run_dir}: the optimiser or RNG state in {state_prefix}.json "
            f"does not fit this run ({type(err).__name__}: {err}); start it again with "
            "--overwrite"
        ) from None
    for group, values in zip(optimizer.param_groups, wanted, strict=True):
        group.update(values)  # the new config's hyper-parameters, the saved buffers
    note = epochs_note(saved_config, config, int(doc["epoch"]), steps_per_epoch)
    if note and ctx.is_main:
        print(note, file=sys.stderr)
    state = RunState(
        start_epoch=int(doc["epoch"]) + 1,
        best_val_acc=float(doc["best_val_acc"]),
        best_epoch=int(doc["best_epoch"]),
        wall_before=float(doc["wall_time_s"]),
        train_clock=float(doc.get("train_clock_s", 0.0)),
        # The last committed epoch's row, for a run with no epoch left to train.
        row=dict(doc["metrics"][-1]) if doc.get("metrics") else {},
        metrics=doc.get("metrics"),
        tensors=tensors,
    )
    _check_epochs_left(state, config, doc, log)
    return state


def _check_epochs_left(state: RunState, config: TrainConfig, doc: dict, log) -> None:
    """Refuse a finished run (or one with no history); say where training picks up."""
    run_dir = config.out_dir
    finished = os.path.isfile(os.path.join(run_dir, "summary.json"))
    if state.start_epoch > config.epochs and (finished or not doc.get("metrics")):
        raise ValueError(
            f"{run_dir} has already trained {doc['epoch']} epochs of {config.epochs}; "
            "give a larger --epochs to train further"
        )
    if state.start_epoch > config.epochs:  # stopped after its last checkpoint, before the end
        log(f"{run_dir} trained all {config.epochs} epochs: finishing its evaluation")
    else:
        log(f"resuming {run_dir} at epoch {state.start_epoch}")
