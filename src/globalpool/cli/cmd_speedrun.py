"""``globalpool speedrun``: a tuned recipe to a CIFAR-10 accuracy target, timed, per seed.

Example:
    globalpool speedrun --target 85 --data ../shared/data/cifar10-jpg.tar.gz
    globalpool speedrun --target 85 --seeds 0 1 2 --data cifar10-jpg.tar.gz --out runs/sr85
    globalpool speedrun --list
    globalpool speedrun --recipe cifar10-94 --device cuda --amp bf16   # any train flag

Each epoch prints a time-to-accuracy line (training clock, test accuracy with and without
test-time augmentation); the end prints mean and spread over seeds. OUT gets one run
directory per seed, ``speedrun.json``, ``speedrun.md`` and ``accuracy_vs_time.png``.
"""

from __future__ import annotations

import argparse

from globalpool.cli.options import Range, add_range_option, in_range
from globalpool.experiment.runs import OVERWRITE_HELP


def register(subparsers) -> None:
    import dataclasses

    from globalpool.cli.cmd_train import add_config_flags
    from globalpool.train.config import TrainConfig

    recipe_fields = {f.name for f in dataclasses.fields(TrainConfig)}

    parser = subparsers.add_parser(
        "speedrun",
        help="train a tuned recipe to a CIFAR-10 accuracy target and time it",
        description="Train a recipe (globalpool speedrun --list) once per seed, print a "
        "time-to-accuracy line per epoch, and write OUT/speedrun.md, speedrun.json and "
        "accuracy_vs_time.png. Every train flag overrides the recipe's setting.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--target", type=in_range(Range(float, 0.0, 100.0), "a percentage: 85, 90 or 94"),
        help="accuracy target in percent: 85, 90 or 94",
    )  # fmt: skip
    which.add_argument("--recipe", help="recipe name (see --list)")
    which.add_argument("--list", action="store_true", help="list the recipes and stop")
    add_range_option(
        parser, "--seeds", allowed=Range(int, 0), nargs="+", default=[0], help="one run per seed"
    )
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="CIFAR-10 location: the official archive or folder, or an image-folder archive "
        "such as cifar10-jpg.tar.gz (default: download the official archive)",
    )
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    for action in add_config_flags(parser):
        if action.dest == "seed":
            action.help = argparse.SUPPRESS  # --seeds
        elif action.dest == "out_dir":
            action.help = action.help.split(" (default:")[0] + " (default: runs/speedrun-<recipe>)"
        elif action.dest in recipe_fields and " (default: " in (action.help or ""):
            # train's defaults do not apply: the recipe sets these (speedrun --list)
            action.help = action.help.split(" (default: ")[0] + " (default: the recipe's)"
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalpool.cli.cmd_train import given_config_flags
    from globalpool.experiment.speedrun import speedrun
    from globalpool.train.presets import RECIPES, get_recipe, recipe_for_target

    if args.list:
        for recipe in RECIPES.values():
            print(
                f"{recipe.name:12s} {100 * recipe.target:.0f}% in {recipe.budget_s / 60:.0f} min "
                f"on {recipe.hardware}: {recipe.summary}"
            )
        return 0
    if args.recipe is not None:
        recipe = get_recipe(args.recipe)
    elif args.target is not None:
        recipe = recipe_for_target(args.target)
    else:
        raise ValueError("give --target (85, 90 or 94) or --recipe NAME (see --list)")
    overrides = given_config_flags(args)
    if "seed" in overrides:
        raise ValueError("speedrun takes --seeds (one run each), not --seed")
    if args.data:
        kwargs = dict(overrides.get("dataset_kwargs", recipe.settings.get("dataset_kwargs", {})))
        overrides["dataset_kwargs"] = {**kwargs, "path": args.data}
    out_dir = overrides.pop("out_dir", f"runs/speedrun-{recipe.name}")
    speedrun(
        recipe,
        seeds=args.seeds,
        out_dir=out_dir,
        overrides=overrides,
        overwrite=args.overwrite,
        command=args.command_line,
    )
    return 0
