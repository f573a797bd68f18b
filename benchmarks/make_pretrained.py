"""Package a finished run as a pretrained model shipped in ``globalpool/pretrained/<name>``.

Copies the run's ``model.json`` and its final weights (``checkpoints/last.safetensors``,
the weights its reported test accuracy is of), measures the test accuracy on the whole
official test set and on its first 500 images (what the test suite checks), and writes
``card.json`` with the data, the command that trained it and the weights' sha256.

Usage:
    python benchmarks/make_pretrained.py --run runs/reproduce/article-fmnist/gap-class-maps/seed0 \
        --name fmnist-smallgap-gap --dataset fashion_mnist --data ../shared/data/fashion-mnist \
        --command "globalpool reproduce article-fmnist --data ../shared/data/fashion-mnist"
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def accuracy(model, images, labels) -> float:
    from globalpool.data import normalize

    with torch.no_grad():
        logits = torch.cat([model(normalize(images[i : i + 1000], model.mean, model.std))
                            for i in range(0, len(images), 1000)])  # fmt: skip
    return float((logits.argmax(1) == labels).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--command", required=True, help="the command that trained the run")
    parser.add_argument("--notes", default="")
    args = parser.parse_args(argv)

    import globalpool
    from globalpool.data import load_dataset
    from globalpool.pretrained import WEIGHTS, sha256_of

    run = Path(args.run)
    out = ROOT / "src" / "globalpool" / "pretrained" / args.name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "model.json", out / "model.json")
    shutil.copyfile(run / "checkpoints" / "last.safetensors", out / WEIGHTS)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    model = globalpool.load(out / WEIGHTS)
    test = load_dataset(args.dataset, path=args.data).test
    card = {
        "name": args.name,
        "model": summary["model"], "head": summary["head"], "pool": summary["pool"],
        "params": summary["params_total"],
        "dataset": args.dataset,
        "data": f"official {args.dataset} files ({len(test):,} test images)",
        "input_size": list(model.input_size),
        "classes": model.classes,
        "command": args.command,
        "epochs": summary["epochs"],
        "weights": "the final epoch's (checkpoints/last.safetensors)",
        "test_acc": accuracy(model, test.images, test.labels),
        "test_acc_first_500": accuracy(model, test.images[:500], test.labels[:500]),
        "sha256": sha256_of(out / WEIGHTS),
        "notes": args.notes,
    }  # fmt: skip
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(card, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
