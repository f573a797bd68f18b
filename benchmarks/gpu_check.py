"""The GPU check: one prepared run on one H100/H200-class card, writing JSON records.

Within a wall-clock budget (default 540 s, under the device machine's 10-minute command
limit) it runs, one after the other, each step under its own share of the time:

1. ``speedrun-94``: ``globalpool speedrun --recipe cifar10-94``, 3 seeds, on the card;
2. ``airbench94``: airbench94 (5 runs) on the same card and data, beside it, through
   ``benchmarks/bench_speedrun.py`` (only with ``--airbench PATH``: its code is not part
   of this project);
3. ``bench-pool-cuda``: ``benchmarks/bench_pool.py --device cuda`` (formula and compiled
   columns) for the pools a head most often uses;
4. ``nin-full``: NIN's Table 5 schedule (``globalpool reproduce nin-heads-cifar10
   --protocol full``, seed 0), one head at a time (``--rows``), GAP first, each head
   reusing the record of those before it, for as many heads as fit in what is left.

A step that runs past its share is stopped; ``gpu-check.json`` says which steps finished,
which were stopped and why, beside the card, the software and each step's command. The
records come back flat in ``--records`` (at most 8 files, as the device tool returns).

Data: the device machine reaches no registry, and what travels to it is at most 64 MiB a
call, while the official CIFAR-10 archive is 170 MB. ``--split-data ARCHIVE DIR`` cuts it
here into parts of 60 MiB (one per call, carried in successive calls to the warm machine);
``--data DIR`` joins them there and checks the joined archive's sha256 when given one.

``--dry-run``: every step at toy size on the CPU, on a small made-up CIFAR-10 release (CI
runs it, so that the script cannot rot; its numbers mean nothing).

    python benchmarks/gpu_check.py --dry-run --records /tmp/gc
    python benchmarks/gpu_check.py --split-data ../shared/data/cifar-10-python.tar.gz .gpu-data
    bash benchmarks/gpu_check.sh --data .gpu-data --records "$OUT"        # on the card
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PART_BYTES = 60 * 2**20
ARCHIVE = "cifar-10-python.tar.gz"
# The sha256 of ../shared/data/cifar-10-python.tar.gz (its README).
SHARED_SHA256 = "2ca1e23a21d57bb9350d3245355ed9f26426e6a754edbf5bcc187ee1d9fec9d3"
NIN_HEADS = ("NIN + GAP", "NIN + FC", "NIN + FC + dropout")
CUDA_POOLS = ("avg", "max", "avgmax", "catavgmax", "gem", "lse", "attention", "gwap")


def split_data(archive: Path, folder: Path) -> list[Path]:
    """Cut ``archive`` into ``folder/<name>.part-NN`` files of at most :data:`PART_BYTES`."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    with archive.open("rb") as fh:
        while chunk := fh.read(PART_BYTES):
            part = folder / f"{archive.name}.part-{len(parts):02d}"
            part.write_bytes(chunk)
            parts.append(part)
    return parts


def join_data(folder: Path, sha256: str | None) -> Path:
    """The archive that ``folder``'s parts make (joined once), checked against ``sha256``."""
    parts = sorted(folder.glob(f"{ARCHIVE}.part-*"))
    target = folder / ARCHIVE
    if parts and not target.exists():
        tmp = target.with_suffix(".tmp")
        with tmp.open("wb") as out:
            for part in parts:
                out.write(part.read_bytes())
        tmp.rename(target)
    if not target.exists():
        raise SystemExit(f"gpu_check: expected {ARCHIVE} or its parts in {folder}; found neither")
    if sha256:
        from globalpool.pretrained import sha256_of

        digest = sha256_of(target)
        if digest != sha256:
            raise SystemExit(f"gpu_check: expected sha256 {sha256} of {target}, got {digest} "
                             "(a part missing?)")  # fmt: skip
    return target


def toy_cifar(folder: Path, per_batch: int = 40, n_test: int = 100) -> Path:
    """A small official-layout ``cifar-10-batches-py`` of random pixels (the dry run's data)."""
    import numpy as np

    from globalpool.data.cifar10 import CIFAR10_CLASSES

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": n_test}
    for name, n in sizes.items():
        labels = rng.permutation(np.arange(n) % 10).tolist()
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({b"labels": labels, b"data": data}, protocol=4))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=4))
    return folder


def plan(args, data: Path, work: Path) -> list[dict]:
    """The steps: name, share of the budget (fraction), command, record to keep."""
    gp = [sys.executable, "-m", "globalpool"]
    dry = args.dry_run
    device = "cpu" if dry else "cuda"
    toy = ["--epochs", "1", "--batch-size", "50", "--warmup-epochs", "0"]
    toy += ["--dataset-kwargs", '{"train_subset": 200, "test_subset": 100}']
    steps = [{
        "name": "speedrun-94",
        "share": 0.3,
        "command": [*gp, "speedrun", "--recipe", "cifar10-94", "--seeds", *(["0"] if dry else
                    ["0", "1", "2"]), "--data", str(data), "--device", device,
                    "--out", str(work / "speedrun-94"), *(toy if dry else [])],
        "keep": {"speedrun-94.json": work / "speedrun-94" / "speedrun.json"},
    }]  # fmt: skip
    if args.airbench:
        steps.append({
            "name": "airbench94",
            "share": 0.15,
            "command": [sys.executable, str(ROOT / "benchmarks" / "bench_speedrun.py"),
                        "--airbench", args.airbench, "--data", str(data), "--device", device,
                        "--recipe", "", "--airbench-runs", "1" if dry else "5",
                        *(["--airbench-epochs", "0.1", "--width-divisor", "4"] if dry else []),
                        "--out", str(work / "airbench94"), "--quiet"],
            "keep": {"airbench94.json": work / "airbench94" / "bench_speedrun.json"},
        })  # fmt: skip
    steps.append({
        "name": "bench-pool-cuda",
        "share": 0.15,
        "command": [sys.executable, str(ROOT / "benchmarks" / "bench_pool.py"),
                    "--device", device, "--ops", *CUDA_POOLS[: 2 if dry else None],
                    "--json", str(work / "bench-pool.json"),
                    *(["--quick", "--shape", "8", "16", "4", "4"] if dry else ["--repeats", "20"])],
        "keep": {"bench-pool-cuda.json": work / "bench-pool.json"},
    })  # fmt: skip
    nin = work / "nin-full"
    for i, head in enumerate(NIN_HEADS):
        steps.append({
            "name": f"nin-full {head}",
            "share": None,  # what is left, in turn
            "command": [*gp, "reproduce", "nin-heads-cifar10", "--protocol", "full",
                        "--seeds", "0", "--rows", head, "--data", str(data),
                        "--device", device, "--out", str(nin),
                        *(["--reuse-record", str(nin / "reproduce.json")] if i else []),
                        *(["--quick"] if dry else [])],
            "keep": {"nin-heads-cifar10-full.json": nin / "reproduce.json",
                     "nin-heads-cifar10-full.png": nin / "reproduce.png"},
        })  # fmt: skip
    return steps


def card() -> dict:
    """The accelerator and software the steps ran on."""
    import torch

    info = {"torch": torch.__version__, "python": platform.python_version(),
            "cuda_available": torch.cuda.is_available()}  # fmt: skip
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            cuda=torch.version.cuda,
        )
    from globalpool.machine import machine_line

    info["host"] = machine_line()
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU (CI)")
    parser.add_argument("--data", help="a folder with the CIFAR-10 archive or its parts")
    parser.add_argument("--sha256", default=SHARED_SHA256, help="of the joined archive ('' = skip)")
    parser.add_argument("--airbench", help="path of airbench's legacy/airbench94.py (optional)")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all steps")
    parser.add_argument("--work", default="runs/gpu-check", help="the steps' run folders")
    parser.add_argument("--records", default="runs/gpu-check/records",
                        help="where the JSON records are copied, flat (e.g. $OUT)")  # fmt: skip
    parser.add_argument("--split-data", nargs=2, metavar=("ARCHIVE", "DIR"),
                        help="cut ARCHIVE into 60 MiB parts in DIR, and stop")  # fmt: skip
    args = parser.parse_args(argv)
    if args.split_data:
        parts = split_data(Path(args.split_data[0]), Path(args.split_data[1]))
        print("\n".join(str(p) for p in parts))
        return 0
    started = time.monotonic()
    work, records = Path(args.work), Path(args.records)
    if work.exists() and not args.dry_run:
        raise SystemExit(f"gpu_check: {work} exists: move it away first (nothing is reused)")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    records.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        data = toy_cifar(work / "toy" / "cifar-10-batches-py")
    elif args.data:
        data = join_data(Path(args.data), args.sha256 or None)
    else:
        parser.error("--data DIR (the CIFAR-10 archive or its parts) or --dry-run")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = {"command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d"), "dry_run": args.dry_run,
              "budget_s": args.budget, "machine": card(), "steps": []}  # fmt: skip
    steps = plan(args, data, work)
    for i, step in enumerate(steps):
        left = args.budget - (time.monotonic() - started)
        limit = left if step["share"] is None else min(left, step["share"] * args.budget)
        entry = {"name": step["name"], "command": " ".join(step["command"]), "limit_s": limit}
        if limit < 10:
            entry.update(status="skipped: the budget is spent")
            result["steps"].append(entry)
            continue
        print(f"gpu_check [{i + 1}/{len(steps)}] {step['name']} (up to {limit:.0f} s)", flush=True)
        t0 = time.monotonic()
        try:
            rc = subprocess.run(step["command"], env=env, timeout=limit, cwd=ROOT).returncode
            status = "finished" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            status = f"stopped at its {limit:.0f} s share"
        entry.update(status=status, wall_s=round(time.monotonic() - t0, 1))
        kept = {}
        for name, source in step["keep"].items():
            if Path(source).is_file():
                shutil.copyfile(source, records / name)
                kept[name] = str(source)
        entry["records"] = kept
        result["steps"].append(entry)
        print(f"gpu_check: {step['name']}: {status}", flush=True)
    result["wall_s"] = round(time.monotonic() - started, 1)
    tmp = records / "gpu-check.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp.rename(records / "gpu-check.json")
    failed = [s["name"] for s in result["steps"] if s["status"].startswith("failed")]
    print(f"gpu_check: {len(steps) - len(failed)} of {len(steps)} steps without error "
          f"in {result['wall_s']:.0f} s; records in {records}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
