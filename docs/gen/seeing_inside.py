"""Seeing inside: CAM grids, localization scores and feature-map views of the models the
compare page trained (docs/gen/compare_shapes.py)."""

from __future__ import annotations

import json
import math

from _common import figure_link, md_table, parse_args, run_cli, write
from PIL import Image

DEPENDS = ["compare_shapes"]


def output_block(output: str) -> str:
    """What a command printed (the command itself is written in seeing-inside.md)."""
    return "```text\n" + output.rstrip("\n") + "\n```"


def main() -> None:
    args = parse_args("seeing_inside")
    import globalpool
    from globalpool.analysis.localization import localization_scores
    from globalpool.analysis.render import cam_grid_figure, save_figure
    from globalpool.data import load_dataset
    from globalpool.experiment.runs import run_dir

    compare_dir = args.deps["compare_shapes"] / "compare"
    labels = [h["label"] for h in json.loads((compare_dir / "compare.json").read_text())["heads"]]
    runs = {label: run_dir(compare_dir, label, 0) for label in labels}  # the --seeds 0 runs
    models = [(label, globalpool.load(runs[label])) for label in labels]
    cfg = json.loads((runs[labels[0]] / "config.json").read_text())
    data = load_dataset(cfg["dataset"], **cfg["dataset_kwargs"])
    mean, std = models[0][1].mean, models[0][1].std
    test = data.test

    # CAM grid: one image per class, then more, true-class maps
    per_class = [int((test.labels == k).nonzero()[0]) for k in range(len(data.classes))]
    index = per_class + [i for i in range(len(test.labels)) if i not in per_class][:2]
    fig = cam_grid_figure(
        models, test.images[index], mean, std, data.classes, labels=test.labels[index]
    )
    save_figure(fig, args.out / "cam_grid.png", dpi=80)
    write(
        args,
        "cam_grid.md",
        f"![CAM of the true class, one column per head of the comparison]"
        f"({figure_link(args, 'cam_grid.png')})",
    )

    # localization scores on test images with the shapes' boxes and masks
    n = 64 if args.quick else 400
    subset = test.subset(list(range(min(n, len(test.labels)))))
    rows = []
    for label, model in models:
        s = localization_scores(model, subset, mean, std)

        def pct(v: float) -> str:
            return "n/a" if math.isnan(v) else f"{v:.1%}"

        rows.append(
            [
                label,
                s["cam_method"],
                pct(s["accuracy"]),
                pct(s["box_acc"]),
                pct(s["top1_loc"]),
                pct(s["pointing_acc"]),
                f"{s['mask_iou']:.3f}",
            ]
        )
    write(
        args,
        "localization.md",
        md_table(
            [
                "head",
                "map",
                "classification acc",
                "box acc (IoU >= 0.5)",
                "top-1 loc",
                "pointing game",
                "mask IoU",
            ],
            rows,
            "llrrrrr",
        )
        + f"\n\nOn the first {len(subset.labels)} test images of `shapes`, maps of the true "
        f"class thresholded at {s['threshold']:.0%} of their maximum "
        "(`globalpool.analysis.localization.localization_scores`).",
    )

    # the CLI: an overlay PNG and a feature-map view of one test image
    image_path = args.out / "example.png"
    Image.fromarray(test.images[index[0]].permute(1, 2, 0).numpy()).save(image_path)
    gap_label = next((lb for lb in labels if lb.startswith("classmap-avg")), labels[-1])
    gap_run = runs[gap_label]
    cam_out = args.out / "cam"
    _, output = run_cli(
        ["cam", "--checkpoint", str(gap_run), str(image_path), "--out", str(cam_out)],
        shown=f"globalpool cam --checkpoint runs/compare/{gap_label}/seed0 example.png --out cam",
    )
    overlays = sorted(cam_out.glob("*.png"))
    if not overlays:
        raise SystemExit("globalpool cam wrote no overlay")
    # a 32x32 overlay is tiny on screen: show it 6x larger, nearest neighbour
    for src, name in ((image_path, "example_big.png"), (overlays[0], "cam_overlay_big.png")):
        img = Image.open(src)
        img.resize((img.width * 6, img.height * 6), Image.NEAREST).save(args.out / name)
    output = output.replace(str(cam_out), "cam").replace(str(image_path), "example.png")
    write(
        args,
        "cam_cli.md",
        output_block(output) + f"\n\n![test image]({figure_link(args, 'example_big.png')}) "
        f"![CAM overlay written by globalpool cam]({figure_link(args, 'cam_overlay_big.png')})",
    )

    layers = "backbone.2,backbone.3,backbone.4,head.conv"
    _, output = run_cli(
        [
            "features",
            "--checkpoint",
            str(gap_run),
            "--layers",
            layers,
            "--k",
            "6",
            "--out",
            str(args.out / "features.png"),
            str(image_path),
        ],
        shown=f"globalpool features --checkpoint runs/compare/{gap_label}/seed0 --layers {layers} "
        "--k 6 --out features.png example.png",
    )
    output = output.replace(str(args.out / "features.png"), "features.png")
    output = output.replace(str(image_path), "example.png")
    write(
        args,
        "features.md",
        output_block(output)
        + f"\n\n![Feature maps of each chosen layer]({figure_link(args, 'features.png')})",
    )


if __name__ == "__main__":
    main()
