"""``globalpool features``: the strongest channels of chosen layers for one image."""

from __future__ import annotations

import argparse
from pathlib import Path

from globalpool.cli.options import Range, add_range_option

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from globalpool.cli.cmd_predict import add_size_flag

    parser = subparsers.add_parser(
        "features",
        help="feature-map grid of chosen layers of a trained run for one image",
        description=(
            "Draw, for one image, the k channels with the largest mean activation of each "
            "chosen layer (rows = layers). Without --layers, list the layer names."
        ),
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="RUN_DIR",
        help="run directory or a .safetensors checkpoint inside one",
    )
    parser.add_argument("image", metavar="IMAGE", help="an image file")
    parser.add_argument(
        "--layers",
        default=None,
        metavar="A,B",
        help="comma-separated module names, e.g. backbone.0,head.conv (omit to list them)",
    )
    add_range_option(
        parser, "--k", allowed=Range(int, 1), default=8, help="channels per layer (default 8)"
    )
    parser.add_argument(
        "--out", default=None, metavar="FILE", help="output image (default <image>_features.png)"
    )
    parser.add_argument("--cmap", default="viridis", help="matplotlib colormap")
    parser.add_argument(
        "--which", choices=("best", "last"), default="best", help="checkpoint of a run dir"
    )
    add_size_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalpool.analysis.features import feature_grid_figure, layer_names
    from globalpool.analysis.images import fit_to_model, normalize_images, read_image
    from globalpool.analysis.render import save_figure
    from globalpool.models.io import load_run

    if not Path(args.image).is_file():
        raise FileNotFoundError(f"no such image file: {args.image!r}")
    model, _ = load_run(args.checkpoint, which=args.which)
    if args.layers is None:
        modules = dict(model.named_modules())
        print("layers (pass some with --layers a,b):")
        for name in layer_names(model):
            print(f"  {name:<28} {type(modules[name]).__name__}")
        return 0
    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    if not layers:
        raise ValueError("--layers needs at least one name, e.g. --layers backbone.0")
    image, note = fit_to_model(read_image(args.image, model.in_chans), model, args.size)
    if note:
        print(f"{args.image}: {note}")
    x = normalize_images(image[None], model.mean, model.std)
    fig = feature_grid_figure(model, x, layers, args.k, image_uint8=image, cmap=args.cmap)
    out = Path(args.out) if args.out else Path(f"{Path(args.image).stem}_features.png")
    save_figure(fig, out)
    print(f"wrote {out} ({len(layers)} layer(s), top {args.k} channels each)")
    return 0
