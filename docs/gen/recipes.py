"""Recipes, run for real: an image folder, train on it, stop and resume, export to ONNX,
predict. Each command's output is shown as it printed during the docs build; the speedrun
results (minutes of CIFAR-10 training, not rerun here) are formatted from their records."""

from __future__ import annotations

import json

from _common import ROOT, parse_args, run_cli, write
from PIL import Image

DEPENDS: list[str] = []
# A literal list (docs/hooks.py reads it without running the script): the speedrun records
# this page formats, in this order.
READS = [
    "benchmarks/results/speedrun/cifar10-85-avx2.json",
    "benchmarks/results/speedrun/cifar10-90-avx2.json",
    "benchmarks/results/speedrun/cifar10-94-float32-avx2.json",
]


def make_folder(args, root) -> int:
    """A small image folder, ``<root>/<class>/<n>.png``, from the shapes generator (a
    stand-in for your own photos)."""
    from globalpool.data import load_dataset

    n = 60 if args.quick else 150
    data = load_dataset("shapes", n_train=n, n_test=10, size=48)
    for i, (image, label) in enumerate(zip(data.train.images, data.train.labels, strict=True)):
        folder = root / data.classes[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:04d}.png")
    return n


def main() -> None:
    args = parse_args("recipes")
    cwd = args.out
    n = make_folder(args, cwd / "my_images")
    tree = sorted(p.relative_to(cwd).as_posix() for p in (cwd / "my_images").iterdir())
    write(
        args,
        "folder.md",
        "```text\n"
        + "\n".join(f"{d}/   ({len(list((cwd / d).glob('*.png')))} PNG files)" for d in tree)
        + "\n```\n\n"
        + f"({n} generated 48x48 shapes, saved as PNG files by the docs build.)",
    )

    epochs = 2 if args.quick else 4
    common = [
        "--model", "fastnet", "--head", "classmap", "--pool", "avg",
        "--dataset", "folder", "--dataset-kwargs", '{"path": "my_images", "size": 48}',
        "--batch-size", "32", "--no-tensorboard", "--quiet",
    ]  # fmt: skip
    outputs = {}
    outputs["train"] = run_cli(
        [
            "train",
            *common,
            "--epochs",
            str(epochs),
            "--stop-after-epoch",
            "1",
            "--out",
            "runs/my-images",
        ],
        cwd=cwd,
    )
    outputs["resume"] = run_cli(["train", "--resume", "runs/my-images", "--quiet"], cwd=cwd)
    metrics = [
        json.loads(line)
        for line in (cwd / "runs/my-images/metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    write(
        args,
        "metrics.md",
        "```json\n"
        + "\n".join(
            json.dumps({k: m[k] for k in ("epoch", "train_acc", "val_acc", "lr")}) for m in metrics
        )
        + "\n```",
    )
    outputs["export"] = run_cli(
        ["export", "--checkpoint", "runs/my-images", "--format", "onnx", "--out", "my-images.onnx"],
        cwd=cwd,
    )
    outputs["predict"] = run_cli(
        ["predict", "--checkpoint", "runs/my-images", "--topk", "2", "my_images/circle"],
        cwd=cwd,
    )
    # The commands are written in recipes.md itself; the build adds what they printed.
    for key, (_command, output) in outputs.items():
        write(args, f"{key}.md", output_block(output, max_lines=15))
    write(
        args,
        "epochs.md",
        f"The first command stopped after epoch 1 of {epochs} (as if the job had been "
        f"killed); `--resume` ran epochs 2 to {metrics[-1]['epoch']} and appended them to "
        "the same `metrics.jsonl`:",
    )
    write(args, "speedrun.md", recorded_speedrun())


def output_block(output: str, max_lines: int) -> str:
    lines = output.rstrip("\n").splitlines()
    if len(lines) > max_lines:
        lines = ["[...]", *lines[-max_lines:]]
    return "```text\n" + "\n".join(lines) + "\n```"


def recorded_speedrun() -> str:
    """The speedrun records named in ``READS``, each formatted from its JSON file (machine,
    commands, table), or a note that none is recorded yet."""
    from globalpool.experiment.speedrun import records_text

    parts = []
    for path in (ROOT / r for r in READS):
        if path.is_file():  # a record whose runs are still going is not there yet
            record = json.loads(path.read_text(encoding="utf-8"))
            parts += [f"`{path.relative_to(ROOT).as_posix()}`:", "", records_text([record]), ""]
    if not parts:
        return '!!! note "Not recorded yet"\n    No speedrun record is kept yet.\n'
    parts.append(
        "Speedrun runs made before records were kept (the 94% recipe, the rows on an Intel "
        'Xeon, the JPEG copy) are described in `BENCHMARKS.md`, section "CIFAR-10 '
        'speedrun"; their JSON files were not kept, so this page does not repeat them.'
    )
    return "\n".join(parts)


if __name__ == "__main__":
    main()
