"""``globalpool predict``: top-k classes for image files and folders from a trained run."""

from __future__ import annotations

import argparse
import json
import sys

from globalpool.cli.options import Range, add_range_option

__all__ = ["register", "run"]

# Files are read CHUNK_BATCHES batches at a time, so a huge folder never sits in memory.
CHUNK_BATCHES = 8


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify images with a trained run",
        description=(
            "Print the top-k classes of each image, resized to the scale the model was "
            "trained at (FC heads: its input size; pooling heads: its shorter side, aspect "
            "kept; --size native or S for pooling heads)."
        ),
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="RUN_DIR",
        help="run directory or a .safetensors checkpoint inside one",
    )
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE_OR_DIR",
        help="image files and/or folders (searched recursively)",
    )
    add_range_option(
        parser, "--topk", allowed=Range(int, 1), default=5, help="classes per image (default 5)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line: {path, topk: [{class, prob}]}",
    )
    parser.add_argument(
        "--size",
        type=size_arg,
        default=None,
        metavar="S|native",
        help="pooling heads: resize the shorter side to S (aspect kept), or 'native' to "
        "feed images at their own size (default: the training scale; a pooling head takes "
        "any size but is not scale invariant)",
    )
    add_range_option(
        parser, "--batch-size", allowed=Range(int, 1), default=64,
        help="images per forward pass (default 64)",
    )  # fmt: skip
    parser.add_argument(
        "--which",
        choices=("best", "last"),
        default="best",
        help="checkpoint of a run directory (default best)",
    )
    parser.set_defaults(func=run)


def size_arg(text: str):
    """``--size`` of predict, cam and features: a positive int or ``native``."""
    if text == "native":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int or 'native'; got {text!r}")
    return value


def add_size_flag(parser: argparse.ArgumentParser) -> None:
    """``--size S|native`` of cam and features (predict words its help for itself)."""
    parser.add_argument(
        "--size",
        type=size_arg,
        default=None,
        metavar="S|native",
        help="pooling heads: resize the shorter side to S, or 'native' for the image's own "
        "size (default: the scale the model was trained at)",
    )


def _print_table(paths, results, out) -> None:
    width = max(len(str(p)) for p in paths)
    name_width = max(len(r["class"]) for top in results for r in top)
    for path, top in zip(paths, results, strict=True):
        ranked = "  ".join(f"{r['class']:<{name_width}} {100 * r['prob']:5.1f}%" for r in top)
        print(f"{path!s:<{width}}  {ranked}", file=out)


def run(args: argparse.Namespace) -> int:
    from globalpool.deploy.images import find_images
    from globalpool.deploy.loading import load

    paths = find_images(args.images)  # checks the paths before the model loads
    model = load(args.checkpoint, which=args.which)
    out = sys.stdout
    chunk = args.batch_size * CHUNK_BATCHES
    for start in range(0, len(paths), chunk):
        part = paths[start : start + chunk]
        results = model.predict(
            [str(p) for p in part], topk=args.topk, size=args.size, batch_size=args.batch_size
        )
        if args.json:
            for path, top in zip(part, results, strict=True):
                record = {
                    "path": str(path),
                    "topk": [{"class": r["class"], "prob": round(r["prob"], 6)} for r in top],
                }
                print(json.dumps(record), file=out)
        else:
            _print_table(part, results, out)
    return 0
