"""``globalpool cam``: class activation map overlays and top-k classes for image files."""

from __future__ import annotations

import argparse
from pathlib import Path

from globalpool.cli.options import Range, add_range_option

METHOD_CHOICES = (
    "auto", "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam",
    "scorecam", "ablationcam",
)  # fmt: skip

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from globalpool.cli.cmd_predict import add_size_flag

    parser = subparsers.add_parser(
        "cam",
        help="class activation maps of a trained run on image files",
        description=(
            "Write a CAM overlay PNG (at the image's size) per image and print its top-k "
            "classes. The map is the class map (classmap head), the classifier-weighted "
            "features (pool-linear head with avg pool) or Grad-CAM (any other head). "
            "Images go in at the scale the model was trained at (--size native: their "
            "own size), and the command says when it resized."
        ),
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="RUN_DIR",
        help="run directory or a .safetensors checkpoint inside one",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument(
        "--class",
        dest="class_name",
        default=None,
        metavar="NAME",
        help="class to map (name or index; default: each image's predicted class)",
    )
    parser.add_argument("--out", default="cam_out", metavar="DIR", help="output folder")
    add_range_option(
        parser, "--topk", allowed=Range(int, 1), default=3, metavar="K", help="classes to print"
    )
    add_range_option(
        parser, "--alpha", allowed=Range(float, 0.0, 1.0), default=0.5, help="heat-map weight"
    )
    parser.add_argument("--cmap", default="jet", help="matplotlib colormap (default jet)")
    parser.add_argument(
        "--method",
        # analysis.cam_family.FAMILY, written out: importing it would import torch at
        # parser-build time (tests/test_cam_cli.py keeps the two equal)
        choices=METHOD_CHOICES,
        default="auto",
        help="auto: the head's own map (class maps, or CAM for avg pool + linear), else "
        "Grad-CAM; the others work on any head",
    )
    parser.add_argument(
        "--layer",
        metavar="NAME",
        help="module whose output to map, e.g. backbone.3 (default: the last feature map; "
        "not with --method auto)",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="also score each map's faithfulness: deletion and insertion areas (RISE; "
        "lower deletion and higher insertion are more faithful), average drop and "
        "increase in confidence (Grad-CAM++); with --masks, its PxAP",
    )
    parser.add_argument(
        "--masks",
        metavar="DIR",
        help="with --metrics: folder of object masks named as the images (DIR/<stem>.png, "
        "nonzero = object); each map's PxAP (pixel average precision, Choe et al. 2020)",
    )
    parser.add_argument(
        "--which", choices=("best", "last"), default="best", help="checkpoint of a run dir"
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_size_flag(parser)
    add_range_option(
        parser, "--scale", allowed=Range(int, 1, 64), default=1, metavar="K",
        help="write the overlay K times the image's size, nearest neighbour (for small "
        "images: 8 makes a 28x28 overlay 224x224)",
    )  # fmt: skip
    parser.set_defaults(func=run)


# the maps that take a backward pass (for the memory check of each image's size):
# analysis.cam_family.GRADIENT_METHODS, written out for the same reason
_GRADIENT_MAPS = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam")


def resolve_class(name: str | None, classes: list[str]) -> int | None:
    """Index of a class given by name or by number; None stays None."""
    if name is None:
        return None
    if name in classes:
        return classes.index(name)
    if name.isdigit() and int(name) < len(classes):
        return int(name)
    raise ValueError(f"unknown class {name!r}; this model's classes: {', '.join(classes)}")


def _mask_path(folder: str, image: str) -> Path:
    """The mask of ``image`` in ``folder``: the file with the image's stem."""
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"--masks: no such folder: {folder!r}")
    stem = Path(image).stem
    found = sorted(p for p in Path(folder).glob(f"{stem}.*") if p.is_file())
    if not found:
        raise FileNotFoundError(
            f"--masks: no mask for {image!r} in {folder} (expected {stem}.png or another "
            f"image file named {stem})"
        )
    return found[0]


def _pxap_of(cam, mask_path: Path) -> float:
    """PxAP of one (H, W) map in [0, 1] against a mask file, the map resized (bilinear)
    to the mask's size."""
    import numpy as np
    import torch.nn.functional as F
    from PIL import Image

    from globalpool.analysis.wsol import pxap

    with Image.open(mask_path) as im:
        mask = np.asarray(im.convert("L")) > 0
    if not mask.any():
        raise ValueError(f"mask {mask_path} has no object pixel (all zero): PxAP needs some")
    resized = F.interpolate(cam[None, None].float(), size=mask.shape, mode="bilinear",
                            align_corners=False)[0, 0].clamp(0, 1)  # fmt: skip
    return pxap(resized[None], mask[None])


def _unique_path(folder: Path, stem: str, used: set[str]) -> Path:
    name, i = f"{stem}_cam.png", 1
    while name in used:
        i += 1
        name = f"{stem}_{i}_cam.png"
    used.add(name)
    return folder / name


def run(args: argparse.Namespace) -> int:
    import torch

    from globalpool.analysis.cam import cam_method, compute_cam
    from globalpool.analysis.images import fit_to_model, normalize_images, read_image
    from globalpool.analysis.render import get_colormap, save_overlay
    from globalpool.models.io import load_run

    get_colormap(args.cmap)  # a typo fails before the model loads
    for path in args.images:  # fail on a typo before the model loads
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such image file: {path!r}")
    if args.masks is not None and not args.metrics:
        raise ValueError("--masks scores PxAP, which --metrics prints: add --metrics")
    masks = {path: _mask_path(args.masks, path) for path in args.images} if args.masks else {}
    model, _ = load_run(args.checkpoint, which=args.which)
    model = model.to(args.device).eval()
    classes, mean, std, in_chans = model.classes, model.mean, model.std, model.in_chans
    class_idx = resolve_class(args.class_name, classes)
    method = None if args.method == "auto" else args.method
    if args.layer is not None and method is None:
        raise ValueError("--layer needs a --method (gradcam, gradcam++, layercam, ...)")
    label = cam_method(model) if method is None else method
    out_dir = Path(args.out)
    used: set[str] = set()
    k = min(args.topk, model.num_classes)

    for path in args.images:
        original = read_image(path, in_chans)
        image, note = fit_to_model(original, model, args.size, grad=label in _GRADIENT_MAPS)
        if note:
            print(f"{path}: {note}")
        x = normalize_images(image[None], mean, std).to(args.device)
        logits, maps = compute_cam(model, x, class_idx, method=method, layer=args.layer)
        probs = torch.softmax(logits[0].float(), dim=0).cpu()
        top = torch.topk(probs, k)
        ranked = "  ".join(
            f"{classes[int(i)]} {100 * float(p):5.1f}%"
            for p, i in zip(top.values, top.indices, strict=True)
        )
        mapped = class_idx if class_idx is not None else int(top.indices[0])
        target = _unique_path(out_dir, Path(path).stem, used)
        # the overlay is drawn on the original image: the map is resized back to it
        save_overlay(
            target, original, maps[0].cpu(), alpha=args.alpha, cmap=args.cmap, scale=args.scale
        )
        print(f"{path}: {ranked}")
        print(f"  {label} map of {classes[mapped]!r} -> {target}")
        if args.metrics:
            from globalpool.analysis.faithfulness import faithfulness

            s = faithfulness(model, x, maps.to(x.device), mapped)
            print(f"  faithfulness: deletion {float(s['deletion'][0]):.3f}  insertion "
                  f"{float(s['insertion'][0]):.3f}  average drop "
                  f"{float(s['average_drop'][0]):.1f}%  increase in confidence "
                  f"{'yes' if s['increase'][0] else 'no'}")  # fmt: skip
            if path in masks:
                print(f"  PxAP {100 * _pxap_of(maps[0].cpu(), masks[path]):.1f}% against "
                      f"{masks[path]}")  # fmt: skip
    return 0
