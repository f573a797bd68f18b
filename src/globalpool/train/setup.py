"""What a training run is built from before its first epoch (:class:`RunSetup`).

:func:`set_up` builds, in this order (the RNG draws depend on it, so every rank and every
resumption builds the same run): the seeded RNGs, the data and its validation split, the
model (counted, moved to the device, initialised from data where its backbone asks), the
optimiser and precision, the loaders (each rank's shard) and the learning-rate schedule.
"""

from __future__ import annotations

import contextlib
import inspect
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from globalpool.data import (
    Augment,
    Dataset,
    ImageSet,
    Loader,
    dataset_entry,
    load_dataset,
    normalize,
    train_val_split,
)
from globalpool.models import Classifier, count_flops, count_params, create_model
from globalpool.models.memory import check_fits_memory
from globalpool.train.config import TrainConfig
from globalpool.train.console import RunLog
from globalpool.train.distributed import DistContext
from globalpool.train.lookahead import Lookahead
from globalpool.train.optim import build_optimizer, freeze_backbone
from globalpool.train.schedule import lr_at


@dataclass
class Optimisation:
    """How the model's parameters are updated: optimiser, loss, precision."""

    optimizer: torch.optim.Optimizer
    criterion: nn.Module
    amp: str  # ``none``, ``bf16`` or ``fp16`` (``auto`` made concrete)
    autocast: Callable  # a factory of autocast contexts for ``amp``
    scaler: torch.amp.GradScaler | None  # fp16 only


@dataclass
class Loaders:
    """This rank's loaders; ``*_limit``: its share of the images (without the padding)."""

    train: Loader
    val: Loader | None  # None with val_fraction 0 (training on every training image)
    test: Loader
    val_limit: int
    test_limit: int


@dataclass
class RunSetup:
    """Everything one training run works with, built by :func:`set_up`."""

    config: TrainConfig
    ctx: DistContext
    log: RunLog
    bars: bool  # progress bars shown
    data: Dataset
    train_set: ImageSet  # the training split, without the validation images
    val_set: ImageSet
    raw_model: Classifier  # on the device, neither DDP-wrapped nor compiled
    params: dict[str, int]  # count_params of the model
    flops: int  # per image, at the data's size
    data_init_s: float  # the data-dependent initialisation's time (timed training)
    optim: Optimisation
    loaders: Loaders
    steps_per_epoch: int
    lr_for_step: Callable[[int], float]  # the schedule: global step -> learning rate
    model: nn.Module | None = None  # what trains: raw_model wrapped and compiled as asked
    lookahead: Lookahead | None = None

    @property
    def run_dir(self) -> str:
        return self.config.out_dir

    @property
    def device(self) -> torch.device:
        return self.ctx.device


def set_up(config: TrainConfig, ctx: DistContext, log: RunLog, bars: bool, *, resume: bool):
    """Build the run of ``config`` (identical on every rank: same seed); a resumed run
    skips the data-dependent initialisation (its weights come from the checkpoint)."""
    seed_everything(config.seed)
    data, train_set, val_set = load_data(config)
    model, params, flops, data_init_s = build_model(
        config, data, train_set, ctx.device, resume=resume
    )
    in_chans, height, width = (int(s) for s in train_set.images.shape[1:])
    check_fits_memory(
        model, in_chans, (height, width), batch=max(1, config.batch_size // ctx.world_size),
        grad=True, device=ctx.device, hint="lower --batch-size",
    )  # fmt: skip
    optim = build_optimisation(config, model, ctx.device)
    loaders = make_loaders(config, data, train_set, val_set, ctx)
    steps_per_epoch = len(loaders.train)
    return RunSetup(
        config=config, ctx=ctx, log=log, bars=bars, data=data, train_set=train_set,
        val_set=val_set, raw_model=model, params=params, flops=flops,
        data_init_s=data_init_s, optim=optim, loaders=loaders,
        steps_per_epoch=steps_per_epoch, lr_for_step=schedule(config, steps_per_epoch),
    )  # fmt: skip


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's RNGs (model initialisation)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_data(config: TrainConfig) -> tuple[Dataset, ImageSet, ImageSet]:
    """The dataset and its (stratified, seeded) training and validation splits."""
    data = load_dataset(config.dataset, **config.dataset_kwargs)
    train_set, val_set = train_val_split(data.train, config.val_fraction, config.seed)
    if config.val_fraction > 0 and len(val_set) == 0:
        raise ValueError(
            f"val_fraction {config.val_fraction} of {len(data.train)} training images leaves "
            "no validation images; raise --val-fraction or use more data"
        )
    return data, train_set, val_set


def create_run_model(config: TrainConfig, num_classes: int, image_shape) -> Classifier:
    """``create_model`` for images of ``image_shape`` (C, H, W); a model too deep for the
    images gets a hint (upscale them, or a model for small inputs)."""
    in_chans, height, width = image_shape
    try:
        return create_model(
            config.model,
            num_classes,
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
        takes_size = "size" in inspect.signature(dataset_entry(config.dataset).loader).parameters
        hint = (
            "upscale the images with --dataset-kwargs '{\"size\": 32}', or " if takes_size else ""
        )
        raise ValueError(
            f"{err}; {config.dataset} images are {height}x{width}: {hint}pick a model "
            "for small inputs (smallgap runs at 8x8)"
        ) from None


def build_model(config: TrainConfig, data: Dataset, train_set: ImageSet, device, *, resume):
    """The model on ``device``, with its parameter and FLOP counts; a backbone's optional
    ``init_from_data`` (fastnet's whitening stem) runs on up to 5,000 normalised training
    images, unless resuming. Returns ``(model, params, flops, data_init_s)``."""
    in_chans, height, width = (int(s) for s in train_set.images.shape[1:])
    model = create_run_model(config, len(data.classes), (in_chans, height, width))
    params = count_params(model)
    flops = int(count_flops(model, (height, width)))
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    # Data-dependent initialisation (fastnet's whitening stem): part of the timed training.
    init_from_data = getattr(getattr(model, "backbone", None), "init_from_data", None)
    data_init_s = 0.0
    if init_from_data is not None and not resume:
        start = time.perf_counter()
        pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.seed))
        sample = normalize(train_set.images[pick[:5000]].to(device), data.mean, data.std)
        init_from_data(sample)
        data_init_s = time.perf_counter() - start
    return model, params, flops, data_init_s


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


def build_optimisation(config: TrainConfig, model: Classifier, device) -> Optimisation:
    """Freeze the backbone when asked, then the optimiser, precision and loss."""
    if config.freeze_backbone:
        freeze_backbone(model)
    optimizer = build_optimizer(model, config)
    amp = resolve_amp(config.amp, device)
    autocast = autocast_context(amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    return Optimisation(optimizer, criterion, amp, autocast, scaler)


def shard_size(n: int, rank: int, world_size: int) -> int:
    """Images of ``n`` that rank ``rank`` holds when rank r takes positions r::world_size
    (the Loader pads the order at its end up to a multiple of world_size; those repeats
    are the tail of each rank's order and are not counted)."""
    return max(0, -(-(n - rank) // world_size))


def make_loaders(
    config: TrainConfig, data: Dataset, train_set: ImageSet, val_set: ImageSet, ctx: DistContext
) -> Loaders:
    """This rank's training (shuffled, augmented), validation and test loaders."""
    augment = (
        Augment(
            crop_padding=config.crop_padding,
            flip=config.flip,
            cutout=config.cutout,
            alternate_flip=config.alternate_flip,
        )
        if config.augment
        else None
    )
    shard = {"rank": ctx.rank, "world_size": ctx.world_size}
    common = {"mean": data.mean, "std": data.std, "device": ctx.device,
              "channels_last": config.channels_last}  # fmt: skip
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
    return Loaders(
        train=train_loader,
        val=Loader(val_set, eval_bs, shuffle=False, **common, **shard) if len(val_set) else None,
        test=Loader(data.test, eval_bs, shuffle=False, **common, **shard),
        val_limit=shard_size(len(val_set), ctx.rank, ctx.world_size),
        test_limit=shard_size(len(data.test), ctx.rank, ctx.world_size),
    )


def schedule(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning rate of every global step (warm-up and decay over all epochs)."""
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)

    def lr_for_step(step: int) -> float:
        return lr_at(
            step, total_steps, lr=config.lr, schedule=config.schedule,
            warmup_steps=warmup_steps, final_lr_ratio=config.final_lr_ratio,
        )  # fmt: skip

    return lr_for_step
