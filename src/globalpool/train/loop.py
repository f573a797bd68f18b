"""The training loop behind ``globalpool train``: :func:`train` (config -> run directory).

:func:`train` runs these steps: check the run directory
(:func:`globalpool.train.resume.check_run_dir`), build the run
(:func:`globalpool.train.setup.set_up`: data, model, optimiser, loaders, schedule),
restore a resumed run's state (:func:`globalpool.train.resume.restore`), wrap the model
(lookahead, DDP, compile), write the run's files, the epoch loop, the final evaluation
and ``summary.json`` (:mod:`globalpool.train.summary`).

Per epoch: one pass over the training shard (:func:`train_one_epoch`), evaluation on the
validation split (:func:`evaluate`), checkpoints (``last`` always, ``best`` when the
validation accuracy improves), one metrics row. Test accuracy at the end, with the final
weights. See :mod:`globalpool.train.checkpoint` for the run directory layout.

Reproducibility: the torch RNG is reseeded at the start of every epoch from
``(seed, epoch, rank)`` and the loader's order/augmentation depend on ``(seed, epoch)``,
so a resumed run repeats the uninterrupted one exactly, in one process or several.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from globalpool.pool import compile_pools
from globalpool.train.checkpoint import CHECKPOINT_DIR, save_weights, write_model_json
from globalpool.train.config import TrainConfig
from globalpool.train.console import (
    RunLog,
    diverged_message,
    epoch_line,
    flip_warning,
    plan_line,
)
from globalpool.train.distributed import (
    DistContext,
    all_reduce_sum,
    barrier,
    setup_distributed,
    teardown_distributed,
    wrap_model,
)
from globalpool.train.lookahead import Lookahead
from globalpool.train.metrics import MetricsWriter, clean_row
from globalpool.train.progress import bars_enabled, progress
from globalpool.train.resume import RunState, check_run_dir, restore
from globalpool.train.rundir import clean_checkpoints, commit_checkpoints, run_dir_lock
from globalpool.train.setup import RunSetup, set_up
from globalpool.train.summary import FinalScores, build_summary, write_summary
from globalpool.train.train_state import save_train_state
from globalpool.train.tta import tta_logits


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class EpochTotals:
    """Sums over one pass: ``loss_sum`` (loss * images), ``correct``, ``count``, ``seconds``."""

    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    seconds: float = 0.0
    diverged_at: int | None = None  # 0-based batch index of the first non-finite loss

    @property
    def loss(self) -> float:
        return self.loss_sum / self.count if self.count else float("nan")

    @property
    def acc(self) -> float:
        return self.correct / self.count if self.count else float("nan")


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A 63-bit seed for the torch RNG in ``epoch`` on ``rank`` (dropout, init of lazies)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(2, np.uint64)[0] >> 1)


def train_one_epoch(
    model: nn.Module,
    batches,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    *,
    lr_for_step,
    first_step: int = 0,
    autocast=contextlib.nullcontext,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float = 0.0,
    check_every: int = 1,
    after_step=None,
) -> EpochTotals:
    """One pass of optimisation over ``batches``.

    Args:
        model: in train mode (possibly DDP- or compile-wrapped).
        batches: iterable of ``(x (B, C, H, W) float32, y (B,) int64)`` on the device.
        lr_for_step: ``step -> lr``; set on every parameter group before each step, times
            the group's ``lr_scale`` (see :func:`globalpool.train.optim.param_groups`).
        first_step: global index of the first step (for the schedule).
        scaler: a GradScaler for fp16, else None.
        grad_clip: max global gradient norm (0 = no clipping).
        check_every: test the loss for NaN/inf every this many steps (0 = only at the
            end, for multi-process runs where ranks must not stop at different steps);
            each check waits for the device.
        after_step: ``step -> None`` called after each optimiser step with its global
            index (weight averaging), or None.

    Returns:
        :class:`EpochTotals` of the training objective and running accuracy; on a
        non-finite loss the pass stops early with ``diverged_at`` set.
    """
    model.train()
    device_loss = None
    device_correct = None
    count = 0
    start = time.perf_counter()
    index = -1
    for index, (x, y) in enumerate(batches):
        lr = lr_for_step(first_step + index)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # backbone/bias lr scales
        with autocast():
            logits = model(x)
            loss = criterion(logits, y)
        if check_every and index % check_every == 0 and not torch.isfinite(loss).item():
            return EpochTotals(float("nan"), 0.0, count, time.perf_counter() - start, index)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        if after_step is not None:
            after_step(first_step + index)
        # Sums stay on the device (no sync per step); read once at the end.
        n = y.shape[0]
        batch_loss = loss.detach().float() * n
        batch_correct = (logits.detach().argmax(1) == y).sum()
        device_loss = batch_loss if device_loss is None else device_loss + batch_loss
        device_correct = batch_correct if device_correct is None else device_correct + batch_correct
        count += n
    loss_sum = float(device_loss) if device_loss is not None else 0.0
    correct = float(device_correct) if device_correct is not None else 0.0
    seconds = time.perf_counter() - start
    diverged = None if math.isfinite(loss_sum) else index
    return EpochTotals(loss_sum, correct, count, seconds, diverged)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches,
    *,
    autocast=contextlib.nullcontext,
    limit: int | None = None,
    tta: str = "none",
) -> EpochTotals:
    """Cross-entropy (no label smoothing) and accuracy sums of ``model`` over ``batches``.

    Args:
        limit: count only the first ``limit`` images (drops a distributed loader's padding).
        tta: test-time augmentation (``none``, ``flip``, ``flip-translate``; see
            :func:`globalpool.train.tta.tta_logits`).
    """
    model.eval()
    loss_sum = correct = 0.0
    count = 0
    start = time.perf_counter()
    for x, y in batches:
        if limit is not None:
            if count >= limit:
                break
            x, y = x[: limit - count], y[: limit - count]
        with autocast():
            logits = tta_logits(model, x, tta)
        loss_sum += float(nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
        count += y.shape[0]
    return EpochTotals(loss_sum, correct, count, time.perf_counter() - start)


def _reduce(totals: EpochTotals, ctx: DistContext) -> EpochTotals:
    """Sum loss, correct and count over ranks (seconds: the slowest rank)."""
    if not ctx.distributed:
        return totals
    t = torch.tensor(
        [totals.loss_sum, totals.correct, totals.count, 0.0 if totals.diverged_at is None else 1],
        dtype=torch.float64,
    )
    t = all_reduce_sum(t, ctx).cpu()
    diverged = totals.diverged_at if totals.diverged_at is not None else (0 if t[3] else None)
    return EpochTotals(float(t[0]), float(t[1]), float(t[2]), totals.seconds, diverged)


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Train ``config.model`` on ``config.dataset`` and write the run directory.

    Args:
        config: the run's settings (see :class:`TrainConfig`).
        resume: continue the run in ``config.out_dir`` from ``checkpoints/last``: epochs,
            schedule, optimiser and RNG state pick up where it stopped.
        overwrite: allow starting afresh in a directory that already holds a run.

    Returns:
        the summary dict also written to ``summary.json`` (keys in ARCHITECTURE.md), or,
        when ``config.stop_after_epoch`` stopped the run, ``{"run_dir", "stopped_after_epoch"}``.

    Raises:
        TrainingDiverged: a NaN/inf loss; files of the last good epoch are kept.
        ValueError / FileNotFoundError: bad settings, no run to resume, a run in the way.

    Example:
        >>> cfg = TrainConfig(model="smallgap", dataset="shapes", epochs=1,
        ...                   out_dir="runs/doc")  # doctest: +SKIP
        >>> train(cfg)["test_acc"]  # doctest: +SKIP
        0.61
    """
    config.validate()
    ctx = setup_distributed(config.device)
    try:
        # Rank 0 alone writes the run directory, so it alone holds the lock.
        with run_dir_lock(config.out_dir) if ctx.is_main else contextlib.nullcontext():
            return _train(config, ctx, resume=resume, overwrite=overwrite)
    finally:
        teardown_distributed(ctx)


@dataclass
class _ProcessTotals:
    """This process's training images and seconds (for ``images_per_s``), and the test
    totals of its latest epoch (with ``test_curve``: the final weights' test score)."""

    wall_start: float  # perf_counter() at the run's start, earlier processes included
    train_images: float = 0.0
    train_seconds: float = 0.0
    test_now: EpochTotals | None = None


def _train(config: TrainConfig, ctx: DistContext, *, resume: bool, overwrite: bool) -> dict:
    """The steps of :func:`train` on one rank, inside the run directory's lock."""
    check_run_dir(config.out_dir, resume=resume, overwrite=overwrite)
    bars = bars_enabled(config.quiet, ctx.is_main)
    log = RunLog(ctx.is_main and not config.quiet, bars)
    run = set_up(config, ctx, log, bars, resume=resume)
    if resume:
        state = restore(
            config, ctx, model=run.raw_model, optimizer=run.optim.optimizer,
            scaler=run.optim.scaler, steps_per_epoch=run.steps_per_epoch, log=log,
        )  # fmt: skip
    else:
        state = RunState(train_clock=run.data_init_s)
    _wrap_model(run, state)
    writer = _open_run_files(run, state, resume=resume) if ctx.is_main else None
    log(plan_line(config, run.data, run.raw_model, run.train_set, run.val_set,
                  run.steps_per_epoch, run.optim.amp, run.device))  # fmt: skip
    warning = flip_warning(config, run.data)
    if warning:
        log(warning)
    totals = _ProcessTotals(wall_start=time.perf_counter() - state.wall_before)
    try:
        stopped = _run_epochs(run, state, totals, writer)
    finally:
        if writer is not None:
            writer.close()
    if stopped is not None:
        return stopped
    scores = _final_evaluation(run, totals)
    if not state.row:  # resumed a run whose last epoch is the final one: nothing trained here
        raise ValueError(f"{run.run_dir}: no epoch left to train")
    summary = build_summary(
        run, state, scores, wall_time_s=time.perf_counter() - totals.wall_start,
        images_per_s=totals.train_images / totals.train_seconds if totals.train_seconds else 0.0,
    )  # fmt: skip
    if ctx.is_main:
        write_summary(run.run_dir, summary)
        best = (
            f"best val acc {state.best_val_acc:.4f} (epoch {state.best_epoch})"
            if run.loaders.val is not None
            else "no validation split"
        )
        log(f"done: test acc {summary['test_acc']:.4f}, {best}; run in {run.run_dir}")
    barrier(ctx)
    return summary


def _wrap_model(run: RunSetup, state: RunState) -> None:
    """Set ``run.lookahead`` (with a resumed run's saved average) and ``run.model``: the
    model DDP-wrapped over several processes and compiled when the config asks."""
    config = run.config
    if config.lookahead_every:
        run.lookahead = Lookahead(
            run.raw_model, every=config.lookahead_every,
            total_steps=config.epochs * run.steps_per_epoch, base_decay=config.lookahead_decay,
        )  # fmt: skip
        if state.tensors is not None:  # resumed
            run.lookahead.load_state_tensors(state.tensors)
    if config.compile_pool:
        compile_pools(run.raw_model)  # only the pools' formulas, per call where faster
    model = wrap_model(run.raw_model, run.ctx)
    if config.compile:
        model = torch.compile(model)
    run.model = model


def _open_run_files(run: RunSetup, state: RunState, *, resume: bool) -> MetricsWriter:
    """Rank 0: write ``config.json`` and ``model.json``, and open the metrics files.

    A run in progress has no summary; a fresh start (--overwrite) keeps nothing old; a
    resumed one drops what an interrupted checkpoint commit left, and its metrics files
    are rewritten from the history saved with the checkpoint."""
    config, data, model, run_dir = run.config, run.data, run.raw_model, run.run_dir
    in_chans, height, width = (int(s) for s in run.train_set.images.shape[1:])
    info = {
        "model": config.model,
        "model_args": model.model_args,
        "classes": list(data.classes),
        "mean": [float(v) for v in data.mean],
        "std": [float(v) for v in data.std],
        "input_size": [height, width],
        "in_chans": in_chans,
        "num_classes": len(data.classes),
        "head": model.head_kind,
        "pool": model.pool_name,
        "dataset": config.dataset,
    }
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(run_dir, "summary.json"))
    clean_checkpoints(run_dir, CHECKPOINT_DIR, keep_current=resume)
    config.save(os.path.join(run_dir, "config.json"))
    write_model_json(run_dir, info)
    return MetricsWriter(
        run_dir, keep_epochs=state.start_epoch - 1 if resume else None,
        rows=state.metrics if resume else None, tensorboard=config.tensorboard,
    )  # fmt: skip


def _run_epochs(
    run: RunSetup, state: RunState, totals: _ProcessTotals, writer: MetricsWriter | None
) -> dict | None:
    """Epochs ``state.start_epoch`` to ``config.epochs``: train, score, save (rank 0),
    log. Returns ``{"run_dir", "stopped_after_epoch"}`` when ``stop_after_epoch`` stops
    the run, else None."""
    config = run.config
    for epoch in progress(
        range(state.start_epoch, config.epochs + 1), enabled=run.bars, desc="epochs",
        initial=state.start_epoch - 1, total=config.epochs,
    ):  # fmt: skip
        epoch_start = time.perf_counter()
        state.row = row = _train_epoch(run, state, totals, epoch, epoch_start)
        # Without a validation split the last epoch is the best one there is.
        improved = row["val_acc"] is None or row["val_acc"] > state.best_val_acc
        if improved:
            state.best_epoch = epoch
            if row["val_acc"] is not None:
                state.best_val_acc = row["val_acc"]
        if writer is not None:  # rank 0
            _save_epoch(run, state, writer, row, improved)
        run.log(epoch_line(row, config.epochs, state.start_epoch, epoch_start))
        if config.stop_after_epoch is not None and epoch >= config.stop_after_epoch:
            barrier(run.ctx)
            return {"run_dir": run.run_dir, "stopped_after_epoch": epoch}
    return None


def _train_epoch(
    run: RunSetup, state: RunState, totals: _ProcessTotals, epoch: int, epoch_start: float
) -> dict:
    """One epoch: the training pass (torch RNG seeded from ``(seed, epoch, rank)``), then
    the validation score, and the test score with ``test_curve``. Returns its metrics
    row; raises :class:`TrainingDiverged` on a NaN/inf loss."""
    config, ctx, loaders, optim = run.config, run.ctx, run.loaders, run.optim
    torch.manual_seed(epoch_seed(config.seed, epoch, ctx.rank))
    loaders.train.set_epoch(epoch)
    batches = progress(loaders.train, enabled=run.bars, desc=f"epoch {epoch}", leave=False)
    first_step = (epoch - 1) * run.steps_per_epoch
    # Multi-process runs check for NaN once per epoch (on reduced sums) so that all ranks
    # stop together; on CUDA a per-step check would wait for the device every step.
    check_every = 0 if ctx.distributed else (1 if run.device.type == "cpu" else 50)
    train = _reduce(
        train_one_epoch(
            run.model, batches, optim.optimizer, optim.criterion, lr_for_step=run.lr_for_step,
            first_step=first_step, autocast=optim.autocast, scaler=optim.scaler,
            grad_clip=config.grad_clip, check_every=check_every,
            after_step=run.lookahead.after_step if run.lookahead else None,
        ),
        ctx,
    )  # fmt: skip
    if train.diverged_at is not None:
        raise TrainingDiverged(diverged_message(
            epoch, train.diverged_at, run.steps_per_epoch,
            run.lr_for_step(first_step + train.diverged_at),
            os.path.join(run.run_dir, CHECKPOINT_DIR),
        ))  # fmt: skip
    state.train_clock += train.seconds
    if run.lookahead is not None and epoch == config.epochs:
        run.lookahead.finish()
    val = _score(run, loaders.val, loaders.val_limit) if loaders.val is not None else None
    totals.train_images += train.count
    totals.train_seconds += train.seconds
    row = {
        "epoch": epoch,
        "train_loss": train.loss,
        "train_acc": train.acc,
        "val_loss": val.loss if val is not None else None,
        "val_acc": val.acc if val is not None else None,
        "gap": train.acc - val.acc if val is not None else None,
        "lr": run.lr_for_step(epoch * run.steps_per_epoch - 1),
        "images_per_s": train.count / train.seconds if train.seconds else 0.0,
        "epoch_time_s": time.perf_counter() - epoch_start,
        "wall_time_s": time.perf_counter() - totals.wall_start,
        "train_clock_s": state.train_clock,
        "test_acc": None,
    }
    if config.test_curve:  # reported only: nothing steers training by it
        totals.test_now = _score(run, loaders.test, loaders.test_limit)
        row["test_acc"] = totals.test_now.acc
    return row


def _save_epoch(
    run: RunSetup, state: RunState, writer: MetricsWriter, row: dict, improved: bool
) -> None:
    """Commit the epoch's checkpoint set (``last`` weights, ``best`` when improved, the
    training state with the metrics history), then append its metrics row."""
    epoch, optim, lookahead, raw_model = row["epoch"], run.optim, run.lookahead, run.raw_model
    extra = {
        "epoch": epoch, "step": epoch * run.steps_per_epoch,
        "best_val_acc": state.best_val_acc, "best_epoch": state.best_epoch,
        "wall_time_s": row["wall_time_s"], "train_clock_s": state.train_clock,
        "config": run.config.to_dict(), "metrics": [*writer.rows, clean_row(row)],
    }  # fmt: skip

    def write_set(folder: Path) -> None:
        meta = {"epoch": epoch}
        save_weights(raw_model, folder / "last.safetensors", meta)
        if improved:
            save_weights(raw_model, folder / "best.safetensors", meta)
        save_train_state(
            folder / "last.state", optimizer=optim.optimizer, scaler=optim.scaler, extra=extra,
            tensors=lookahead.state_tensors() if lookahead else None,
        )  # fmt: skip

    commit_checkpoints(run.run_dir, CHECKPOINT_DIR, epoch, write_set, carry=("best.safetensors",))
    writer.write(row)


def _score(run: RunSetup, loader, limit: int, tta: str = "none") -> EpochTotals:
    """The final-or-current weights' totals over ``loader``, summed over ranks."""
    totals = evaluate(run.raw_model, loader, autocast=run.optim.autocast, limit=limit, tta=tta)
    return _reduce(totals, run.ctx)


def _final_evaluation(run: RunSetup, totals: _ProcessTotals) -> FinalScores:
    """The final weights on the test set (reusing the last epoch's score with
    ``test_curve``), and with the config's test-time augmentation on the validation split
    (for choosing settings) and the test set."""
    config, loaders = run.config, run.loaders
    val_tta = test_tta = None
    if config.tta != "none" and loaders.val is not None:
        val_tta = _score(run, loaders.val, loaders.val_limit, config.tta)
    test = totals.test_now
    if test is None:
        test = _score(run, loaders.test, loaders.test_limit)
    final_eval_s = test.seconds
    if config.tta != "none":
        test_tta = _score(run, loaders.test, loaders.test_limit, config.tta)
        final_eval_s = test_tta.seconds
    return FinalScores(
        test_acc=test.acc, test_loss=test.loss,
        test_acc_tta=test_tta.acc if test_tta is not None else None,
        val_acc_tta=val_tta.acc if val_tta is not None else None, final_eval_s=final_eval_s,
    )  # fmt: skip
