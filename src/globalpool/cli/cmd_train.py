"""``globalpool train``: train one model on one dataset and write a run directory.

Every field of :class:`globalpool.train.TrainConfig` is a flag (``--batch-size``,
``--no-nesterov``, ``--head-kwargs '{"dropout": 0.5}'``...). ``--config FILE`` starts from
a saved ``config.json``; flags given on the command line override it. ``--resume RUN_DIR``
continues a stopped run from its last checkpoint.

Example:
    globalpool train --model fastnet --head classmap --pool avg --dataset shapes \\
        --epochs 5 --out runs/x
    globalpool train --model torchvision:resnet18 --model-kwargs '{"pretrained": true}' \\
        --head classmap --pool gem --backbone-lr-scale 0.1 --dataset folder ...
    torchrun --nproc_per_node=2 -m globalpool train --model smallgap --out runs/ddp
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

HELP = {
    "model": "architecture (globalpool models lists them), or torchvision:NAME / timm:NAME",
    "head": "head kind: fc, classmap or pool-linear (default: the model's)",
    "pool": "global pool of the head (globalpool pools lists them)",
    "head_kwargs": "JSON object of head arguments, e.g. '{\"dropout\": 0.5}'",
    "pool_kwargs": "JSON object of pool arguments, e.g. '{\"p\": 3}'",
    "model_kwargs": "JSON object of architecture arguments, e.g. '{\"widths\": [64,256,256]}'",
    "freeze_backbone": "train the head only: backbone weights frozen, its batch norms in eval mode",
    "backbone_lr_scale": "backbone learning rate = lr x this (the head trains at --lr)",
    "dataset": "dataset name: fashion_canvas, shapes, digits, cifar10, mnist, fashion_mnist "
    "or folder",
    "dataset_kwargs": "JSON object of dataset options, e.g. '{\"n_train\": 2000}'",
    "val_fraction": "fraction of the training set held out for validation (0: train on all)",
    "augment": "random crop + flip augmentation of training batches",
    "crop_padding": "padding of the random crop, pixels",
    "flip": "random horizontal flips",
    "alternate_flip": "mirror each image in every other epoch instead of at random "
    "(airbench's derandomised flip)",
    "cutout": "cutout square side, pixels (0 = off)",
    "epochs": "number of epochs",
    "batch_size": "global batch size (split across processes under torchrun)",
    "eval_batch_size": "batch size for validation and test (default 2 x batch size)",
    "optimizer": "sgd (Nesterov momentum) or adamw",
    "lr": "peak learning rate",
    "momentum": "SGD momentum",
    "nesterov": "Nesterov momentum for SGD",
    "betas": "AdamW betas",
    "weight_decay": "weight decay (weights only, not biases/norms)",
    "decay_norm_and_bias": "also decay biases and normalisation parameters",
    "bias_lr_scale": "biases and normalisation parameters train at lr x this (their decay "
    "divided by it)",
    "schedule": "learning-rate schedule: cosine, linear, onecycle or constant",
    "warmup_epochs": "linear warm-up length in epochs (may be fractional)",
    "final_lr_ratio": "cosine and linear schedules: final lr as a fraction of --lr",
    "label_smoothing": "label smoothing of the training loss",
    "grad_clip": "clip the global gradient norm to this value (0 = off)",
    "lookahead_every": "average the weights every N steps and restart from the average (0 = off)",
    "lookahead_decay": "the weight-averaging decay reached at the end of training",
    "tta": "test-time augmentation for test_acc_tta: none, flip or flip-translate",
    "test_curve": "measure test accuracy every epoch (reported only; not timed)",
    "amp": "mixed precision: none, bf16 (CPU/CUDA) or fp16 (CUDA)",
    "channels_last": "channels-last memory format",
    "compile": "torch.compile the model",
    "compile_pool": "torch.compile the pooling operator only (globalpool.pool.compile_pools)",
    "device": "auto, cpu or cuda",
    "seed": "seed for data order, augmentation and initialisation",
    "out_dir": "run directory to write",
    "quiet": "no progress bars and no epoch lines",
    "tensorboard": "write TensorBoard event files (when tensorboard is installed)",
}


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def add_config_flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """One flag per TrainConfig field (and ``--threads``); returns the actions added, so
    that a verb can adjust their help (compare and speedrun show their own defaults)."""
    from globalpool.cli.options import in_range
    from globalpool.train.config import (
        AMP_MODES,
        DEVICES,
        OPTIMIZERS,
        RANGES,
        SCHEDULES,
        TTA_MODES,
        Range,
        TrainConfig,
    )  # fmt: skip

    choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "amp": AMP_MODES}
    choices["device"] = DEVICES
    choices["tta"] = TTA_MODES
    actions: list[argparse.Action] = []
    for field in dataclasses.fields(TrainConfig):
        name = field.name
        flags = ["--" + name.replace("_", "-")]
        if name == "out_dir":
            flags = ["--out", "--out-dir"]
        # SUPPRESS: only flags the user gave appear in the namespace, so they (and only
        # they) override --config / the resumed run's config.
        kw: dict = {"dest": name, "default": argparse.SUPPRESS}
        if name == "stop_after_epoch":
            help_text = "stop (as if killed) after this epoch: to try --resume; "
            help_text += RANGES[name].text()
            allowed = in_range(RANGES[name])
            actions.append(
                parser.add_argument(*flags, type=allowed, metavar="E", help=help_text, **kw)
            )
            continue
        kw["help"] = HELP.get(name, name)
        hint = str(field.type)  # the annotation's text (config uses postponed annotations)
        default = field.default if field.default is not dataclasses.MISSING else None
        if hint.startswith("bool"):
            kw["action"] = argparse.BooleanOptionalAction
        elif hint.startswith("dict"):
            kw.update(type=_json_object, metavar="JSON")
        elif name == "betas":
            # 1 itself passes here and is refused by TrainConfig.validate (a half-open range)
            beta = in_range(Range(float, 0.0, 1.0), "a number in [0, 1)")
            kw.update(type=beta, nargs=2, metavar=("B1", "B2"))
            kw["help"] += "; each in [0, 1)"
        elif name in RANGES:
            kw["type"] = in_range(RANGES[name])
            kw["help"] += "; " + RANGES[name].text()
        elif name in choices:
            kw["choices"] = choices[name]
        if default is not None and "help" in kw and not isinstance(default, dict):
            kw["help"] += f" (default: {default})"
        actions.append(parser.add_argument(*flags, **kw))
    actions.append(add_threads_flag(parser))
    return actions


def add_threads_flag(parser: argparse.ArgumentParser) -> argparse.Action:
    """``--threads N``: torch's CPU threads for this command (main applies it)."""
    from globalpool.cli.options import Range, in_range

    return parser.add_argument(
        "--threads",
        type=in_range(Range(int, 1)),
        metavar="N",
        help="CPU threads torch may use, an integer >= 1 (default: torch's choice, one per "
        "core). On a machine busy with other work, 1 avoids threads spinning against each "
        "other",
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one model on one dataset",
        description="Train one model on one dataset and write a run directory "
        "(config.json, model.json, metrics.jsonl/csv, summary.json, checkpoints/).",
    )
    parser.add_argument("--config", metavar="FILE", help="start from this config.json")
    parser.add_argument(
        "--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start again in an --out that holds a run"
    )
    add_config_flags(parser)
    parser.set_defaults(func=run)


def given_config_flags(args: argparse.Namespace) -> dict:
    """The TrainConfig fields set on the command line by :func:`add_config_flags`'s flags
    (they default to SUPPRESS, so only the flags given are in ``args``)."""
    from globalpool.train.config import TrainConfig

    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if hasattr(args, f.name)
    }


def config_from_args(args: argparse.Namespace):
    """The TrainConfig given by ``--config`` / ``--resume`` and the explicit flags."""
    from globalpool.train.config import TrainConfig

    overrides = given_config_flags(args)
    if args.resume and args.config:
        raise ValueError("give either --resume RUN_DIR or --config FILE, not both")
    if args.resume:
        if not os.path.isdir(args.resume):
            raise FileNotFoundError(f"run directory to resume not found: {args.resume}")
        base = TrainConfig.load(os.path.join(args.resume, "config.json"))
        overrides["out_dir"] = args.resume
        # The simulated kill of the first run is not part of the resumed one.
        overrides.setdefault("stop_after_epoch", None)
    elif args.config:
        base = TrainConfig.load(args.config)
    else:
        base = TrainConfig()
    return base.replace(**overrides).validate()


def run(args: argparse.Namespace) -> int:
    from globalpool.train import TrainingDiverged, train

    config = config_from_args(args)
    try:
        summary = train(config, resume=bool(args.resume), overwrite=args.overwrite)
    except TrainingDiverged as err:
        print(f"globalpool train: {err}", file=sys.stderr)
        return 1
    # Under torchrun every rank returns the summary; only rank 0 reports it.
    if "test_acc" in summary and config.quiet and os.environ.get("RANK", "0") == "0":
        print(json.dumps({k: summary[k] for k in ("run_dir", "best_val_acc", "test_acc")}))
    return 0
