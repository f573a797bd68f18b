"""``globalpool export``: a trained run as an ONNX or TorchScript file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from globalpool.cli.options import Range, add_range_option

__all__ = ["register", "run"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained run to ONNX or TorchScript",
        description=(
            "Write the model of a run as ONNX or TorchScript, then reload the file and check "
            "it against PyTorch at three input sizes. Pooling-head models get dynamic batch, "
            "height and width; FC-head models a dynamic batch at the trained size. The graph "
            "takes the normalised image (pixel / 255 - mean) / std; mean, std, classes and "
            "the training input size are stored in the file's metadata. A dynamic size is not "
            "scale invariance: resize images to that input size (as `globalpool predict` does "
            "by default) unless their objects appear at the training scale."
        ),
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="RUN_DIR",
        help="run directory or a .safetensors checkpoint inside one",
    )
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write")
    parser.add_argument(
        "--mask",
        action="store_true",
        help="add a second input: mask (N, H, W) bool, True = valid pixel; "
        "the global pool then pools valid positions only",
    )
    add_range_option(
        parser, "--opset", allowed=Range(int, 11), default=17,
        help="ONNX opset (default 17): from 11, the lowest every pool exports at, to the "
        "highest the installed torch's exporter takes (20 in torch 2.13), checked before "
        "the run loads",
    )  # fmt: skip
    parser.add_argument(
        "--which",
        choices=("best", "last"),
        default="best",
        help="checkpoint of a run directory (default best)",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip reloading and comparing the written file"
    )
    parser.set_defaults(func=run)


def _check_out(out: Path) -> None:
    """--out must be a file path in a writable folder; checked before loading anything."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the file to write (e.g. {out}/model.onnx)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {out} cannot be written: {parent} is a file")
            if not os.access(parent, os.W_OK):
                raise ValueError(f"--out {out} cannot be written: no permission in {parent}")
            break


def _need_modules(names: tuple[str, ...]) -> None:
    import importlib.util

    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        raise ValueError(
            f"ONNX export needs {', '.join(missing)}, which is not installed: "
            "pip install 'globalpool[export]'"
        )


def run(args: argparse.Namespace) -> int:
    from globalpool.deploy.export import check_opset, export_model
    from globalpool.deploy.loading import load

    _check_out(Path(args.out))
    if args.format == "onnx":
        _need_modules(("onnx", "onnxruntime") if not args.no_verify else ("onnx",))
        check_opset(args.opset)
    model = load(args.checkpoint, which=args.which)
    kwargs = {"mask": args.mask, "verify": not args.no_verify}
    if args.format == "onnx":
        kwargs["opset"] = args.opset
    result = export_model(model, args.out, format=args.format, **kwargs)
    dims = (
        "dynamic batch, height, width"
        if "height" in str(result.dynamic_axes)
        else (f"dynamic batch, fixed size {tuple(model.input_size)}")
    )
    print(f"wrote {result.path} ({result.format}; inputs {', '.join(result.inputs)}; {dims})")
    if result.max_abs_diff is not None:
        shapes = ", ".join("x".join(map(str, s)) for s in result.verified_shapes)
        print(f"verified against PyTorch at {shapes}: max abs diff {result.max_abs_diff:.2e}")
    return 0
