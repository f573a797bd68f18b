"""Choose a recipe's settings on the validation split: train variants, rank by validation.

Each variant is the recipe with some settings changed (``key=value;key=value``, values in
JSON where they parse as JSON, e.g. ``pool=avg``, ``epochs=12``,
``model_kwargs={"stem": "whiten", "widths": [48, 96, 192]}``; the empty string is the
recipe itself). Every variant trains on the training split minus the held-out validation
split (10%, stratified, seeded; also for a recipe whose final runs train on every
training image, ``val_fraction`` 0); the table ranks them by final validation accuracy (with
the recipe's test-time augmentation, and without) beside their training clock. The test
split is not read here: runs write a test accuracy into their own summary.json, which this
script ignores, so settings are chosen on validation only, as ``globalpool speedrun``'s
honesty rule asks.

Usage:
    python benchmarks/tune_recipe.py --recipe cifar10-85 --data cifar10-jpg.tar.gz \\
        --variants '' 'pool=avg' 'pool=gem' 'epochs=8' -- --device cuda
Arguments after ``--`` are ``globalpool train`` flags applied to every variant.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def parse_variant(text: str) -> dict:
    """``'pool=avg;epochs=8'`` -> ``{"pool": "avg", "epochs": 8}``."""
    changes = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"variant item {item!r} is not key=value")
        try:
            changes[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            changes[key.strip()] = value
    return changes


def variant_settings(recipe, common: dict, texts: list[str]) -> list[dict]:
    """The settings each variant changes: ``common`` flags, then the variant's own; every
    one keeps a validation split (a recipe whose final runs train on every image,
    ``val_fraction`` 0, is tuned with 10% held out)."""
    variants = []
    for text in texts:
        changes = {**common, **parse_variant(text)}
        if changes.get("val_fraction") == 0:
            raise ValueError(
                f"variant {text!r} sets val_fraction 0: tuning ranks by validation accuracy"
            )
        changes.setdefault("val_fraction", recipe.settings.get("val_fraction") or 0.1)
        variants.append(changes)
    return variants


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--data", help="CIFAR-10 path (dataset_kwargs path)")
    parser.add_argument("--variants", nargs="+", default=[""])
    parser.add_argument("--out", default="runs/tune")
    args = parser.parse_args(argv)

    from globalpool.cli.cmd_train import given_config_flags
    from globalpool.cli.main import build_parser
    from globalpool.machine import isa_caps, machine_line
    from globalpool.train import train
    from globalpool.train.presets import get_recipe

    recipe = get_recipe(args.recipe)
    flags = build_parser().parse_args(["train", *extra])
    common = given_config_flags(flags)
    if args.data:
        common["dataset_kwargs"] = {"path": args.data}
    out = Path(args.out)
    variants = variant_settings(recipe, common, args.variants)  # all checked before training
    rows = []
    for i, (text, changes) in enumerate(zip(args.variants, variants, strict=True)):
        config = recipe.config(
            **{**changes, "test_curve": False, "quiet": True, "out_dir": str(out / f"variant{i}")}
        )
        summary = train(config, overwrite=True)
        row = {
            "variant": text or "(recipe)",
            "val_acc": summary["final_val_acc"],
            "val_acc_tta": summary["final_val_acc_tta"],
            "train_clock_s": summary["train_clock_s"],
            "epochs": summary["epochs"],
            "device": summary["device"],
        }
        rows.append(row)
        tta = "n/a" if row["val_acc_tta"] is None else f"{100 * row['val_acc_tta']:.2f}%"
        print(
            f"{row['variant']:60s} val {100 * row['val_acc']:.2f}%  val+TTA {tta}  "
            f"clock {row['train_clock_s']:.1f} s",
            flush=True,
        )
        out.mkdir(parents=True, exist_ok=True)
        record = {
            "recipe": recipe.name, "rows": rows, "cpu": machine_line(), "isa_caps": isa_caps(),
            "command": shlex.join(["python", "benchmarks/tune_recipe.py", *sys.argv[1:]]),
        }  # fmt: skip
        (out / "tune.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nranked by validation accuracy with TTA ({recipe.name}):")
    for row in sorted(rows, key=lambda r: -(r["val_acc_tta"] or r["val_acc"])):
        tta = row["val_acc_tta"] or row["val_acc"]
        print(f"  {100 * tta:6.2f}%  {row['train_clock_s']:7.1f} s  {row['variant']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
