"""The CAM family side by side: cost per image, localization and faithfulness per method
and head, on a localization claim's finished runs (boxes and masks known).

Reads one seed's runs of ``globalpool reproduce CLAIM`` (run that first), then for every
method scores the test images (box accuracy at 20% of the map's maximum, MaxBoxAcc and
MaxBoxAccV2 over 1000 thresholds and PxAP, as wsolevaluation computes them; pointing
game) and times it, and on the first ``--faith-images`` its faithfulness (deletion /
insertion areas, average drop, increase in confidence) and that cost, all in one process,
so the per-image costs compare. Score-CAM and Ablation-CAM run C extra forward passes per
image (C = channels of the mapped layer), batched.

Usage:
    python benchmarks/bench_cam.py --claim cam-localization-fashion \
        --data ../shared/data/fashion-mnist --runs runs/reproduce/cam-localization-fashion \
        --seed 0 --images 200 --json benchmarks/results/cam-methods-fashion.json
    python benchmarks/bench_cam.py --table benchmarks/results/cam-methods-fashion.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claim", default="cam-localization-fashion")
    parser.add_argument("--data", help="the claim's --data (the Fashion-MNIST idx folder)")
    parser.add_argument("--runs", default="runs/reproduce/cam-localization-fashion")
    parser.add_argument("--faith-images", type=int, default=32, help="images for faithfulness")
    parser.add_argument("--table", metavar="RECORD", help="print RECORD as Markdown and stop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=200, help="test images scored")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="runs of reproduce --quick")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if args.table:
        with open(args.table, encoding="utf-8") as fh:
            print(table(json.load(fh)))
        return 0

    import globalpool
    from globalpool.analysis.cam import compute_cam
    from globalpool.analysis.cam_family import FAMILY
    from globalpool.analysis.faithfulness import faithfulness
    from globalpool.analysis.localization import localization_metrics
    from globalpool.analysis.wsol import box_ious, pxap, scores_from_ious
    from globalpool.data import load_dataset, normalize
    from globalpool.experiment.claims import get_claim
    from globalpool.experiment.reproduce import plan_runs
    from globalpool.machine import machine_line

    claim = get_claim(args.claim)
    runs = plan_runs(claim, seeds=[args.seed], out_dir=args.runs, quick=args.quick,
                     data=args.data)  # fmt: skip
    data = load_dataset(runs[0]["config"].dataset, **runs[0]["config"].dataset_kwargs)
    test = data.test.subset(np.arange(min(args.images, len(data.test))))
    rows = []
    for run in runs:
        model = globalpool.load(run["config"].out_dir, which="last")
        x = normalize(test.images, model.mean, model.std)
        for method in ("auto", *FAMILY):
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
            scores = scores_from_ious(*box_ious(maps, test.boxes))  # wsolevaluation's rules
            at_02 = localization_metrics(maps, masks=test.masks, threshold=0.2)
            k = min(args.faith_images, len(test))
            start = time.perf_counter()
            faith = faithfulness(model, x[:k], maps[:k], torch.as_tensor(test.labels[:k]),
                                 batch_size=args.batch_size)  # fmt: skip
            faith_seconds = time.perf_counter() - start
            row = {
                "head": run["row"], "method": method, "ms_per_image": 1000 * seconds / len(test),
                **{key: scores[key] for key in ("box_acc_at_0.2", "max_box_acc",
                                                "max_box_acc_v2")},
                "pxap": None if test.masks is None else pxap(maps, test.masks),
                "pointing": at_02["pointing_acc"],
                "faith_images": k, "faith_ms_per_image": 1000 * faith_seconds / k,
                **{key: float(faith[key].mean())
                   for key in ("deletion", "insertion", "average_drop", "increase")},
            }  # fmt: skip
            rows.append(row)
            print(f"{row['head']:24s} {method:10s} {row['ms_per_image']:8.2f} ms/image  box@0.2 "
                  f"{100 * row['box_acc_at_0.2']:5.1f}%  MaxBoxAcc {100 * row['max_box_acc']:5.1f}%"
                  f"  pointing {100 * row['pointing']:5.1f}%", flush=True)  # fmt: skip
    given = sys.argv[1:] if argv is None else argv
    result = {
        "command": "python benchmarks/bench_cam.py " + " ".join(given),
        "claim": claim.name, "seed": args.seed, "images": len(test),
        "machine": machine_line(), "torch_threads": torch.get_num_threads(), "rows": rows,
    }  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def table(record: dict) -> str:
    """A record's rows as the Markdown table of BENCHMARKS.md."""
    lines = [
        "| head | method | ms / image | box @0.2 | MaxBoxAcc | MaxBoxAccV2 | PxAP | pointing "
        "| deletion | insertion | average drop | increase | faithfulness ms / image |",
        "|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in record["rows"]:
        lines.append(
            f"| {r['head']} | {r['method']} | {r['ms_per_image']:.2f} | "
            f"{100 * r['box_acc_at_0.2']:.1f}% | {100 * r['max_box_acc']:.1f}% | "
            f"{_pct(r.get('max_box_acc_v2'))} | {_pct(r.get('pxap'))} | "
            f"{100 * r['pointing']:.1f}% | {r['deletion']:.3f} | {r['insertion']:.3f} | "
            f"{r['average_drop']:.1f}% | {100 * r['increase']:.0f}% | "
            f"{r['faith_ms_per_image']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
