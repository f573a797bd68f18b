"""What "any input size" buys a pooling head: accuracy of one trained run on its test set
drawn at other scales, fed at native size and under predict's default policy.

The test images are upscaled by each factor (bilinear), then classified (a) at that
native size (``size="native"``: what a pooling head accepts) and (b) as ``predict`` does by
default, resized back to the training scale. A pooling head runs at any size, but its
filters saw objects at one scale: (a) measures how far that goes.

Usage:
    python benchmarks/bench_scale.py --run runs/reproduce/article-fmnist/gap-class-maps/seed0 \
        --dataset fashion_mnist --data ../shared/data/fashion-mnist --scales 1 1.5 2
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import torch
import torch.nn.functional as F


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run directory")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data", help="the dataset's path")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    parser.add_argument("--limit", type=int, default=None, help="first N test images")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    import globalpool
    from globalpool.data import load_dataset
    from globalpool.deploy import predict_proba
    from globalpool.machine import machine_line

    model = globalpool.load(args.run, which="last")
    kwargs = {"path": args.data} if args.data else {}
    test = load_dataset(args.dataset, **kwargs).test
    images, labels = test.images[: args.limit], test.labels[: args.limit]
    h, w = images.shape[-2:]
    rows = []
    for scale in args.scales:
        size = (round(h * scale), round(w * scale))
        drawn = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True)
        drawn = drawn.round().clamp(0, 255).to(torch.uint8)
        row = {"scale": scale, "size": list(size)}
        for policy, option in (("native", "native"), ("default", None)):
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the far-from-training-scale warning
                probs = predict_proba(model, drawn, size=option, batch_size=500)
            row[f"acc_{policy}"] = float((probs.argmax(1) == labels).float().mean())
        rows.append(row)
        print(
            f"scale {scale:4.2f} ({size[0]}x{size[1]}): native {100 * row['acc_native']:.2f}%,"
            f" default (resized to the training scale) {100 * row['acc_default']:.2f}%"
        )
    result = {"run": args.run, "dataset": args.dataset, "n_images": len(labels),
              "machine": machine_line(), "rows": rows}  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
