"""The training loop behind ``globalpool train``: :func:`train` (config -> run directory).

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
import inspect
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from globalpool.pool import compile_enabled, set_compile
from globalpool.train.checkpoint import (
    CHECKPOINT_DIR,
    load_weights_into,
    read_safetensors,
    save_weights,
    write_model_json,
)
from globalpool.train.config import TrainConfig
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
from globalpool.train.optim import build_optimizer
from globalpool.train.progress import bars_enabled, progress
from globalpool.train.rundir import clean_checkpoints, commit_checkpoints, run_dir_lock
from globalpool.train.schedule import lr_at
from globalpool.train.train_state import apply_train_state, load_train_state, save_train_state
from globalpool.train.tta import tta_logits

# Fields that may differ between a run and its resumption without changing its results.
_RESUME_FREE_FIELDS = {"epochs", "quiet", "tensorboard", "stop_after_epoch", "out_dir", "device"}


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


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's RNGs (model initialisation)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_amp(amp: str, device: torch.device) -> str:
    """``amp`` with ``auto`` made concrete: ``bf16`` where ``device`` computes bfloat16
    natively (CUDA compute capability >= 8, a CPU with AMX or AVX-512 BF16), else
    ``none``: emulated bf16 was 8.7x slower than float32 on an AVX2-only CPU."""
    if amp != "auto":
        return amp
    from globalpool.machine import native_bf16

    return "bf16" if native_bf16(device.type) else "none"


def autocast_context(amp: str, device: torch.device):
    """A factory of autocast contexts for ``amp`` (``none``/``bf16``/``fp16``) on ``device``."""
    if amp == "none":
        return contextlib.nullcontext
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp 'fp16' needs a CUDA device; on the CPU use --amp bf16")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


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
        lr_for_step: ``step -> lr``; set on every parameter group before each step.
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
            group["lr"] = lr
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


def shard_size(n: int, rank: int, world_size: int) -> int:
    """Images of ``n`` that rank ``rank`` holds when rank r takes positions r::world_size
    (the Loader pads the order at its end up to a multiple of world_size; those repeats
    are the tail of each rank's order and are not counted)."""
    return max(0, -(-(n - rank) // world_size))


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


class _Log:
    """Epoch lines on stdout (rank 0, unless quiet); through tqdm when bars are shown."""

    def __init__(self, enabled: bool, bars: bool) -> None:
        self.enabled, self.bars = enabled, bars

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bars:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)
        else:
            print(message, flush=True)


# Settings that make another run: a resumed run refuses to change them.
_RESUME_FIXED_FIELDS = (
    "model", "head", "pool", "head_kwargs", "pool_kwargs", "model_kwargs", "dataset",
    "dataset_kwargs", "val_fraction", "seed", "optimizer", "batch_size",
    "decay_norm_and_bias", "lookahead_every",
)  # fmt: skip
# Optimiser hyper-parameters a resumed run takes from its new config, not from the state.
_RESUME_OPTIM_KEYS = ("momentum", "nesterov", "weight_decay", "betas")


def _check_resume_config(saved: dict, config: TrainConfig, ctx: DistContext) -> None:
    """Refuse changes that would make another run; say (even with --quiet) which changed
    settings the resumed run applies from here on."""
    fixed = [k for k in _RESUME_FIXED_FIELDS if k in saved and saved[k] != config.to_dict()[k]]
    if fixed:
        raise ValueError(
            "cannot resume with a different "
            + ", ".join(f"{k} ({saved[k]!r} -> {config.to_dict()[k]!r})" for k in fixed)
            + ": that is another run; start it in a new --out (or --overwrite)"
        )
    changed = sorted(
        k
        for k, v in config.to_dict().items()
        if k not in _RESUME_FREE_FIELDS and k in saved and saved[k] != v
    )
    if changed and ctx.is_main:
        print(
            "warning: resuming with changed settings, applied from the next epoch on: "
            + ", ".join(f"{k}: {saved[k]!r} -> {config.to_dict()[k]!r}" for k in changed)
            + " (the result will differ from an uninterrupted run)",
            file=sys.stderr,
        )


_STATE_KEYS = ("epoch", "best_val_acc", "best_epoch", "wall_time_s", "rng",
               "optim_param_groups", "optim_scalars")  # fmt: skip


def _check_state_doc(doc, path: str) -> None:
    """A damaged last.state.json names what it lacks, not just a key."""
    missing = [k for k in _STATE_KEYS if not isinstance(doc, dict) or k not in doc]
    if missing:
        raise ValueError(
            f"cannot resume: {path} is damaged (no {', '.join(missing)}); restore it or "
            "start the run again with --overwrite"
        )


def _epochs_note(saved: dict, config: TrainConfig, done: int, steps: int) -> str | None:
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
    pools_compiled = compile_enabled()  # process-wide: restored afterwards
    set_compile(config.compile_pool)
    try:
        # Rank 0 alone writes the run directory, so it alone holds the lock.
        with run_dir_lock(config.out_dir) if ctx.is_main else contextlib.nullcontext():
            return _train(config, ctx, resume=resume, overwrite=overwrite)
    finally:
        set_compile(pools_compiled)
        teardown_distributed(ctx)


def _train(config: TrainConfig, ctx: DistContext, *, resume: bool, overwrite: bool) -> dict:
    from globalpool.data import Augment, Loader, load_dataset, train_val_split
    from globalpool.models import count_flops, count_params, create_model

    run_dir = config.out_dir
    ckpt_dir = os.path.join(run_dir, CHECKPOINT_DIR)
    state_prefix = os.path.join(ckpt_dir, "last.state")
    bars = bars_enabled(config.quiet, ctx.is_main)
    log = _Log(ctx.is_main and not config.quiet, bars)
    if resume:
        if not os.path.isfile(state_prefix + ".json"):
            raise FileNotFoundError(
                f"cannot resume {run_dir}: no {CHECKPOINT_DIR}/last.state.json there "
                "(the run saved no epoch yet, or this is not a run directory)"
            )
    elif os.path.isfile(state_prefix + ".json") and not overwrite:
        raise ValueError(
            f"{run_dir} already holds a run; use --resume {run_dir} to continue it, "
            "--overwrite to start it again, or another --out"
        )

    # ---- data and model (identical on every rank: same seed) ----------------------------
    seed_everything(config.seed)
    data = load_dataset(config.dataset, **config.dataset_kwargs)
    train_set, val_set = train_val_split(data.train, config.val_fraction, config.seed)
    if len(val_set) == 0:
        raise ValueError(
            f"val_fraction {config.val_fraction} of {len(data.train)} training images leaves "
            "no validation images; raise --val-fraction or use more data"
        )
    in_chans, height, width = (int(s) for s in train_set.images.shape[1:])
    try:
        model = create_model(
            config.model,
            len(data.classes),
            head=config.head,
            pool=config.pool,
            in_chans=in_chans,
            input_size=(height, width),
            head_kwargs=config.head_kwargs,
            pool_kwargs=config.pool_kwargs,
            **config.model_kwargs,
        )
    except ValueError as err:
        if "too small" not in str(err):
            raise
        from globalpool.data import dataset_entry

        takes_size = "size" in inspect.signature(dataset_entry(config.dataset).loader).parameters
        hint = (
            "upscale the images with --dataset-kwargs '{\"size\": 32}', or "
            if takes_size
            else ""
        )
        raise ValueError(
            f"{err}; {config.dataset} images are {height}x{width}: {hint}pick a model "
            "for small inputs (smallgap runs at 8x8)"
        ) from None
    params = count_params(model)
    flops = int(count_flops(model, (height, width)))
    device = ctx.device
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    raw_model = model
    # Data-dependent initialisation (fastnet's whitening stem): part of the timed training.
    init_from_data = getattr(getattr(model, "backbone", None), "init_from_data", None)
    data_init_s = 0.0
    if init_from_data is not None and not resume:
        from globalpool.data import normalize

        start = time.perf_counter()
        pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.seed))
        sample = normalize(train_set.images[pick[:5000]].to(device), data.mean, data.std)
        init_from_data(sample)
        data_init_s = time.perf_counter() - start
    optimizer = build_optimizer(raw_model, config)
    amp = resolve_amp(config.amp, device)
    autocast = autocast_context(amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    mean, std = data.mean, data.std
    augment = (
        Augment(crop_padding=config.crop_padding, flip=config.flip, cutout=config.cutout)
        if config.augment
        else None
    )
    shard = {"rank": ctx.rank, "world_size": ctx.world_size}
    common = {"mean": mean, "std": std, "device": device, "channels_last": config.channels_last}
    if len(train_set) < config.batch_size:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the training split "
            f"({len(train_set)} images); lower --batch-size"
        )
    if config.batch_size % ctx.world_size:
        raise ValueError(
            f"batch_size {config.batch_size} must be divisible by the number of processes "
            f"({ctx.world_size}) so that every rank gets an equal shard"
        )
    # The Loader's batch_size is per rank: rank r takes rows r::world_size of each global
    # batch, so the ranks together see exactly the single-process batches.
    train_loader = Loader(
        train_set, config.batch_size // ctx.world_size, shuffle=True, augment=augment,
        seed=config.seed, drop_last=True, **common, **shard,
    )  # fmt: skip
    eval_bs = -(-(config.eval_batch_size or 2 * config.batch_size) // ctx.world_size)
    val_loader = Loader(val_set, eval_bs, shuffle=False, **common, **shard)
    test_loader = Loader(data.test, eval_bs, shuffle=False, **common, **shard)

    val_limit = shard_size(len(val_set), ctx.rank, ctx.world_size)
    test_limit = shard_size(len(data.test), ctx.rank, ctx.world_size)
    steps_per_epoch = len(train_loader)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)

    def lr_for_step(step: int) -> float:
        return lr_at(
            step, total_steps, lr=config.lr, schedule=config.schedule,
            warmup_steps=warmup_steps, final_lr_ratio=config.final_lr_ratio,
        )  # fmt: skip

    # ---- resume ---------------------------------------------------------------------
    start_epoch, best_val_acc, best_epoch, wall_before = 1, -1.0, 0, 0.0
    train_clock = data_init_s
    if resume:
        tensors, doc = load_train_state(state_prefix)
        _check_state_doc(doc, state_prefix + ".json")
        weights_path = os.path.join(ckpt_dir, "last.safetensors")
        weights, weights_meta = read_safetensors(weights_path)
        if weights_meta.get("epoch") != str(doc["epoch"]):
            raise ValueError(
                f"{weights_path} is from epoch {weights_meta.get('epoch')} but "
                f"{state_prefix}.json from epoch {doc['epoch']}; the run was interrupted "
                "while saving and cannot be resumed exactly"
            )
        load_weights_into(raw_model, weights, weights_path)
        saved_config = doc.get("config", {})
        _check_resume_config(saved_config, config, ctx)
        wanted = [{k: g[k] for k in _RESUME_OPTIM_KEYS if k in g} for g in optimizer.param_groups]
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
        note = _epochs_note(saved_config, config, int(doc["epoch"]), steps_per_epoch)
        if note and ctx.is_main:
            print(note, file=sys.stderr)
        start_epoch = int(doc["epoch"]) + 1
        best_val_acc, best_epoch = float(doc["best_val_acc"]), int(doc["best_epoch"])
        wall_before = float(doc["wall_time_s"])
        train_clock = float(doc.get("train_clock_s", 0.0))
        finished = os.path.isfile(os.path.join(run_dir, "summary.json"))
        if start_epoch > config.epochs and (finished or not doc.get("metrics")):
            raise ValueError(
                f"{run_dir} has already trained {doc['epoch']} epochs of {config.epochs}; "
                "give a larger --epochs to train further"
            )
        if start_epoch > config.epochs:  # stopped after its last checkpoint, before the end
            log(f"{run_dir} trained all {config.epochs} epochs: finishing its evaluation")
        else:
            log(f"resuming {run_dir} at epoch {start_epoch}")

    lookahead = None
    if config.lookahead_every:
        lookahead = Lookahead(
            raw_model, every=config.lookahead_every, total_steps=total_steps,
            base_decay=config.lookahead_decay,
        )  # fmt: skip
        if resume:
            lookahead.load_state_tensors(tensors)
    model = wrap_model(raw_model, ctx)
    if config.compile:
        model = torch.compile(model)

    info = {
        "model": config.model,
        "model_args": raw_model.model_args,
        "classes": list(data.classes),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "input_size": [height, width],
        "in_chans": in_chans,
        "num_classes": len(data.classes),
        "head": raw_model.head_kind,
        "pool": raw_model.pool_name,
        "dataset": config.dataset,
    }
    writer = None
    if ctx.is_main:
        # A run in progress has no summary; a fresh start (--overwrite) keeps nothing old;
        # a resumed one drops what an interrupted checkpoint commit left.
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(run_dir, "summary.json"))
        clean_checkpoints(run_dir, CHECKPOINT_DIR, keep_current=resume)
        config.save(os.path.join(run_dir, "config.json"))
        write_model_json(run_dir, info)
        writer = MetricsWriter(
            run_dir, keep_epochs=start_epoch - 1 if resume else None,
            rows=doc.get("metrics") if resume else None, tensorboard=config.tensorboard,
        )  # fmt: skip

    # Multi-process runs check for NaN once per epoch (on reduced sums) so that all ranks
    # stop together; on CUDA a per-step check would wait for the device every step.
    check_every = 0 if ctx.distributed else (1 if device.type == "cpu" else 50)
    log(_plan_line(config, data, raw_model, train_set, val_set, steps_per_epoch, amp, device))
    if config.augment and config.flip and data.info.get("flip_preserves_label") is False:
        log(
            f"warning: random horizontal flips are on, but {config.dataset} declares that a "
            "flip changes what an image shows (a mirrored digit is another symbol); "
            "train with --no-flip"
        )
    wall_start = time.perf_counter() - wall_before
    train_images = train_seconds = 0.0
    test_now = None  # the test set's totals after the latest epoch (with test_curve)
    # The last committed epoch's row, for a resumed run with no epoch left to train.
    row: dict[str, Any] = dict(doc["metrics"][-1]) if resume and doc.get("metrics") else {}
    try:
        for epoch in progress(
            range(start_epoch, config.epochs + 1), enabled=bars, desc="epochs",
            initial=start_epoch - 1, total=config.epochs,
        ):  # fmt: skip
            epoch_start = time.perf_counter()
            torch.manual_seed(epoch_seed(config.seed, epoch, ctx.rank))
            train_loader.set_epoch(epoch)
            batches = progress(train_loader, enabled=bars, desc=f"epoch {epoch}", leave=False)
            first_step = (epoch - 1) * steps_per_epoch
            totals = _reduce(
                train_one_epoch(
                    model, batches, optimizer, criterion, lr_for_step=lr_for_step,
                    first_step=first_step, autocast=autocast, scaler=scaler,
                    grad_clip=config.grad_clip, check_every=check_every,
                    after_step=lookahead.after_step if lookahead else None,
                ),
                ctx,
            )  # fmt: skip
            if totals.diverged_at is not None:
                kept = (
                    f"the last good checkpoint is {ckpt_dir}/last.safetensors (epoch {epoch - 1})"
                    if epoch > 1
                    else "no checkpoint was saved (it diverged in the first epoch)"
                )
                raise TrainingDiverged(
                    f"training diverged: the loss became NaN or infinite in epoch {epoch} "
                    f"(batch {totals.diverged_at + 1} of {steps_per_epoch}, lr "
                    f"{lr_for_step(first_step + totals.diverged_at):.4g}); stopped without "
                    f"saving this epoch; {kept}. Lower --lr or set --grad-clip."
                )
            train_clock += totals.seconds
            if lookahead is not None and epoch == config.epochs:
                lookahead.finish()
            val = _reduce(evaluate(raw_model, val_loader, autocast=autocast, limit=val_limit), ctx)
            train_images += totals.count
            train_seconds += totals.seconds
            row = {
                "epoch": epoch,
                "train_loss": totals.loss,
                "train_acc": totals.acc,
                "val_loss": val.loss,
                "val_acc": val.acc,
                "gap": totals.acc - val.acc,
                "lr": lr_for_step(epoch * steps_per_epoch - 1),
                "images_per_s": totals.count / totals.seconds if totals.seconds else 0.0,
                "epoch_time_s": time.perf_counter() - epoch_start,
                "wall_time_s": time.perf_counter() - wall_start,
                "train_clock_s": train_clock,
            }
            row["test_acc"] = None
            if config.test_curve:  # reported only: nothing steers training by it
                test_now = _reduce(
                    evaluate(raw_model, test_loader, autocast=autocast, limit=test_limit), ctx
                )
                row["test_acc"] = test_now.acc
            improved = val.acc > best_val_acc
            if improved:
                best_val_acc, best_epoch = val.acc, epoch
            if ctx.is_main:
                extra = {
                    "epoch": epoch, "step": epoch * steps_per_epoch,
                    "best_val_acc": best_val_acc, "best_epoch": best_epoch,
                    "wall_time_s": row["wall_time_s"], "train_clock_s": train_clock,
                    "config": config.to_dict(), "metrics": [*writer.rows, clean_row(row)],
                }  # fmt: skip

                def write_set(folder: Path, improved=improved, extra=extra) -> None:
                    meta = {"epoch": extra["epoch"]}
                    save_weights(raw_model, folder / "last.safetensors", meta)
                    if improved:
                        save_weights(raw_model, folder / "best.safetensors", meta)
                    save_train_state(
                        folder / "last.state", optimizer=optimizer, scaler=scaler, extra=extra,
                        tensors=lookahead.state_tensors() if lookahead else None,
                    )  # fmt: skip

                commit_checkpoints(
                    run_dir, CHECKPOINT_DIR, epoch, write_set, carry=("best.safetensors",)
                )
                writer.write(row)
            log(
                f"epoch {epoch}/{config.epochs}  train loss {row['train_loss']:.4f} "
                f"acc {row['train_acc']:.4f}  val loss {row['val_loss']:.4f} "
                f"acc {row['val_acc']:.4f}  gap {row['gap']:+.4f}  lr {row['lr']:.4g}  "
                f"{row['images_per_s']:.0f} img/s  {row['epoch_time_s']:.1f}s"
                f"  clock {train_clock:.1f}s"
                + _test_note(row)
                + _estimate_note(epoch, start_epoch, config.epochs, epoch_start)
            )
            if config.stop_after_epoch is not None and epoch >= config.stop_after_epoch:
                barrier(ctx)
                return {"run_dir": run_dir, "stopped_after_epoch": epoch}
    finally:
        if writer is not None:
            writer.close()

    val_tta = None
    if config.tta != "none":  # for choosing settings on the validation split (tuning)
        val_tta = _reduce(
            evaluate(raw_model, val_loader, autocast=autocast, limit=val_limit, tta=config.tta),
            ctx,
        )
    # With the test curve on, the last epoch already evaluated the final weights on test.
    if test_now is None:
        test = _reduce(evaluate(raw_model, test_loader, autocast=autocast, limit=test_limit), ctx)
    else:
        test = test_now
    test_tta = None
    final_eval_s = test.seconds
    if config.tta != "none":
        test_tta = _reduce(
            evaluate(raw_model, test_loader, autocast=autocast, limit=test_limit, tta=config.tta),
            ctx,
        )
        final_eval_s = test_tta.seconds
    if not row:  # resumed a run whose last epoch is the final one: nothing trained here
        raise ValueError(f"{run_dir}: no epoch left to train")
    summary = {
        "run_dir": run_dir,
        "model": config.model,
        "head": raw_model.head_kind,
        "pool": raw_model.pool_name,
        "dataset": config.dataset,
        "params_total": int(params["total"]),
        "params_backbone": int(params["backbone"]),
        "params_head": int(params["head"]),
        "flops_per_image": flops,
        "best_val_acc": best_val_acc,
        "best_epoch": best_epoch,
        "final_val_acc": row["val_acc"],
        "final_val_loss": row["val_loss"],
        "final_val_acc_tta": val_tta.acc if val_tta is not None else None,
        "test_acc": test.acc,
        "test_loss": test.loss,
        "tta": config.tta,
        "test_acc_tta": test_tta.acc if test_tta is not None else None,
        "train_clock_s": train_clock,
        "final_eval_s": final_eval_s,
        "final_train_acc": row["train_acc"],
        "final_train_loss": row["train_loss"],
        "gap": row["gap"],
        "epochs": config.epochs,
        "wall_time_s": time.perf_counter() - wall_start,
        "images_per_s": train_images / train_seconds if train_seconds else 0.0,
        "device": _device_name(device),
        "amp_used": amp,
        "world_size": ctx.world_size,
        "num_classes": len(data.classes),
        "train_images": len(train_set),
        "val_images": len(val_set),
        "test_images": len(data.test),
        "torch_version": torch.__version__,
        "config": config.to_dict(),
    }
    if ctx.is_main:
        from globalpool.atomic import atomic_write_text

        atomic_write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2))
        log(
            f"done: test acc {summary['test_acc']:.4f}, best val acc {best_val_acc:.4f} "
            f"(epoch {best_epoch}); run in {run_dir}"
        )
    barrier(ctx)
    return summary


def _plan_line(config, data, model, train_set, val_set, steps, amp, device) -> str:
    """The startup line: what will be trained, on what, how long, how."""
    if not config.augment:
        augment = "none"
    else:
        parts = [f"crop (padding {config.crop_padding})"] if config.crop_padding else []
        parts += ["horizontal flip"] if config.flip else []
        parts += [f"cutout {config.cutout}"] if config.cutout else []
        augment = ", ".join(parts) or "none"
    precision = {"none": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[amp]
    if config.amp == "auto":
        precision += " (auto: " + ("native bf16" if amp == "bf16" else "no native bf16") + ")"
    return (
        f"train {config.model} ({model.head_kind} head, pool {model.pool_name}) on "
        f"{config.dataset}: {len(train_set):,} train / {len(val_set):,} val / "
        f"{len(data.test):,} test images; {config.epochs} epoch"
        f"{'s' if config.epochs != 1 else ''} x {steps} steps of "
        f"{config.batch_size}; augmentation: {augment}; {precision}; {_device_name(device)}"
    )


def _estimate_note(epoch: int, first: int, last: int, epoch_start: float) -> str:
    """After the first epoch of this process: the time the remaining epochs should take."""
    left = last - epoch
    if epoch != first or left == 0:
        return ""
    remaining = (time.perf_counter() - epoch_start) * left
    return f"  (about {remaining / 60:.1f} min more for {left} epoch{'s' if left != 1 else ''})"


def _test_note(row: dict) -> str:
    return f"  test acc {row['test_acc']:.4f}" if row.get("test_acc") is not None else ""


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"
