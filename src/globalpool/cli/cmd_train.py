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
        kw["help"] = field.metadata["doc"]  # written once, in TrainConfig
        if name == "stop_after_epoch":
            kw["metavar"] = "E"
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
