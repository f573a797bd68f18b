"""The CAM family side by side: seconds per image and localization scores per method and
head, on the shapes set (boxes and masks known).

Trains (or reuses) one small run per head with ``globalpool reproduce cam-localization``'s
settings for one seed, then for every method scores the test images (box accuracy at
20% of the map's maximum, MaxBoxAcc over thresholds, pointing game) and times it, all in
one process, so the per-image costs compare. Score-CAM runs C masked forward passes per
image (C = channels of the mapped layer), batched ``--batch-size`` at a time.

Usage:
    python benchmarks/bench_cam.py --runs runs/reproduce/cam-localization --seed 0 \
        --images 200 --json cam_methods.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

METHODS = ("auto", "gradcam", "gradcam++", "layercam", "eigencam", "scorecam")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/reproduce/cam-localization")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=200, help="test images scored")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="runs of reproduce --quick")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    import globalpool
    from globalpool.analysis.cam import compute_cam
    from globalpool.analysis.localization import box_acc_by_threshold, localization_metrics
    from globalpool.data import load_dataset, normalize
    from globalpool.experiment.claims import get_claim
    from globalpool.experiment.reproduce import THRESHOLDS, plan_runs
    from globalpool.machine import machine_line

    claim = get_claim("cam-localization")
    runs = plan_runs(claim, seeds=[args.seed], out_dir=args.runs, quick=args.quick)
    data = load_dataset(runs[0]["config"].dataset, **runs[0]["config"].dataset_kwargs)
    test = data.test.subset(np.arange(min(args.images, len(data.test))))
    rows = []
    for run in runs:
        model = globalpool.load(run["config"].out_dir, which="last")
        x = normalize(test.images, model.mean, model.std)
        for method in METHODS:
            start = time.perf_counter()
            maps = []
            for i in range(0, len(test), args.batch_size):
                _, m = compute_cam(model, x[i : i + args.batch_size],
                                   test.labels[i : i + args.batch_size],
                                   method=None if method == "auto" else method,
                                   batch_size=args.batch_size)  # fmt: skip
                maps.append(m)
            seconds = time.perf_counter() - start
            maps = torch.cat(maps)
            box_acc = {t: float(ok.mean()) for t, ok in
                       box_acc_by_threshold(maps, test.boxes, THRESHOLDS).items()}  # fmt: skip
            at_02 = localization_metrics(maps, masks=test.masks, threshold=0.2)
            row = {
                "head": run["row"], "method": method, "ms_per_image": 1000 * seconds / len(test),
                "box_acc_at_0.2": box_acc[0.2],
                "max_box_acc": max(box_acc.values()),
                "pointing": at_02["pointing_acc"],
            }  # fmt: skip
            rows.append(row)
            print(f"{row['head']:24s} {method:10s} {row['ms_per_image']:8.2f} ms/image  box@0.2 "
                  f"{100 * row['box_acc_at_0.2']:5.1f}%  MaxBoxAcc {100 * row['max_box_acc']:5.1f}%"
                  f"  pointing {100 * row['pointing']:5.1f}%", flush=True)  # fmt: skip
    result = {"images": len(test), "machine": machine_line(), "rows": rows}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
