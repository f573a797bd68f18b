"""Channels-last average pooling: ``t.mean(1)`` against a batched vector-matrix product.

``cpu_kernels.row_mean`` sums the rows of a contiguous (N, L, C) view by
``ones(1, L) @ t`` where that was measured faster than ``t.mean(1)``; this script is that
measurement (no_grad forward, best of 7 rounds, interleaved shapes), one JSON record.

    python benchmarks/bench_row_mean.py --json benchmarks/results/bench-row-mean.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from globalpool.machine import machine_line

SHAPES = [
    (256, 64, 64),
    (64, 64, 49),
    (256, 128, 49),
    (128, 256, 49),
    (64, 512, 49),
    (64, 512, 196),
    (64, 1024, 49),
    (64, 2048, 49),
    (256, 2048, 49),
    (32, 2048, 49),
    (8, 2048, 49),
]  # fmt: skip  (N, C, L)


def best_us(fn, calls: int = 200, rounds: int = 7) -> float:
    for _ in range(20):
        fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with torch.no_grad():
        for n, c, length in SHAPES:
            x = torch.randn(n, length, c)
            ones = x.new_ones(1, length)
            mean = best_us(lambda x=x: x.mean(1))
            product = best_us(lambda x=x, o=ones, n=n, c=c: torch.matmul(o, x).view(n, c))
            rows.append({"n": n, "channels": c, "length": length, "mean_us": mean,
                         "product_us": product, "mean_over_product": mean / product})  # fmt: skip
            print(f"N={n} C={c} L={length}: mean {mean:.1f} us, product {product:.1f} us, "
                  f"mean / product {mean / product:.2f}")  # fmt: skip
    if args.json:
        record = {"command": "python benchmarks/bench_row_mean.py " + " ".join(sys.argv[1:]),
                  "date": time.strftime("%Y-%m-%d"), "machine": machine_line(),
                  "torch": torch.__version__, "threads": args.threads, "rows": rows}  # fmt: skip
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
