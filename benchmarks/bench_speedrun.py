"""CIFAR-10 speedrun: globalpool's recipe beside airbench94, same machine, same data, same run.

airbench94 (K. Jordan, github.com/KellerJordan/cifar10-airbench, ``legacy/airbench94.py``)
is the fastest public CIFAR-10 trainer to 94%. Its code is not part of this project: fetch
it yourself and give its path. This script runs it unchanged except for what this machine
needs, each change an exact text substitution that must match once (listed by
``--show-changes``), and a small prelude:

- always: the number of runs (25 in the original) and, with ``--width-divisor``, its
  three widths; its data comes from ``cifar10/train.pt`` and ``test.pt``, which this script
  writes from the same CIFAR-10 copy globalpool reads (in the format its loader expects),
  so nothing is downloaded;
- on the CPU (``--device cpu``): float32 instead of float16, tensors on the CPU, CUDA
  timing events replaced by wall-clock ones, ``--threads`` threads, and, where
  torchvision does not import (missing, or built for another torch), its one use of
  torchvision (``transforms.Normalize``) replaced by the same arithmetic.

Both report test accuracy against a training clock that leaves out per-epoch reporting
evaluations and includes the final test-time-augmented evaluation; airbench's TTA is its
own (mirror + one-pixel translations, level 2). Then globalpool's recipe runs (``globalpool
speedrun``'s code) on the same device, and one plot shows both curves.

Usage:
    python benchmarks/bench_speedrun.py --airbench PATH/legacy/airbench94.py \\
        --data ../shared/data/cifar10-jpg.tar.gz --recipe cifar10-85 --width-divisor 4
    python benchmarks/bench_speedrun.py --airbench airbench94.py --data cifar10-jpg.tar.gz \\
        --device cuda --recipe cifar10-94 --airbench-runs 5 -- --amp bf16
    python benchmarks/bench_speedrun.py --table benchmarks/results/speedrun/RECORD.json
Arguments after ``--`` go to the recipe as ``globalpool train`` flags. ``--globalpool-result
runs/X/speedrun.json`` takes a finished ``globalpool speedrun`` instead of rerunning it
(same machine and data, one after the other, never at the same time). ``--table`` prints
the records' CPU, commands and table as BENCHMARKS.md shows them (records of
``globalpool speedrun`` or of this script), and trains nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

# The changes to airbench94.py: (why, original text, replacement). {runs} and {wN} are
# filled in; every original must occur exactly once.
ALWAYS = [
    ("number of runs", "for run in range(25)]", "for run in range({runs})]"),
    ("epochs (9.9 unless --airbench-epochs)", "'train_epochs': 9.9,", "'train_epochs': {epochs},"),
    ("width 1", "'block1': 64,", "'block1': {w1},"),
    ("width 2", "'block2': 256,", "'block2': {w2},"),
    ("width 3", "'block3': 256,", "'block3': {w3},"),
]
CPU_ONLY = [
    ("float32 net on the CPU", "net = net.half().cuda()", "net = net.float()"),
    ("float32 images", "(self.images.half() / 255)", "(self.images.float() / 255)"),
    ("data on the CPU", "map_location=torch.device(gpu)", "map_location='cpu'"),
]  # fmt: skip

CPU_PRELUDE = """\
# --- prelude added by globalpool's benchmarks/bench_speedrun.py (CPU run) ---
import sys as _sys, time as _time, types as _types, torch as _torch
_torch.set_num_threads({threads})
class _WallEvent:
    def __init__(self, enable_timing=False): self.t = None
    def record(self): self.t = _time.perf_counter()
    def elapsed_time(self, end): return 1000.0 * (end.t - self.t)
_torch.cuda.Event = _WallEvent
_torch.cuda.synchronize = lambda *a, **k: None
try:
    import torchvision  # noqa: F401
except (ImportError, RuntimeError):  # missing, or built for another torch (its ops fail)
    class _Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = _torch.as_tensor(mean), _torch.as_tensor(std)
        def __call__(self, x):
            return (x - self.mean.view(-1, 1, 1).to(x)) / self.std.view(-1, 1, 1).to(x)
    _tv = _types.ModuleType("torchvision")
    _tv.transforms = _types.ModuleType("torchvision.transforms")
    _tv.transforms.Normalize = _Normalize; _tv.datasets = None
    _sys.modules["torchvision"] = _tv; _sys.modules["torchvision.transforms"] = _tv.transforms
# --- end of prelude ---
"""


def adapt_airbench(
    source: str, *, device: str, runs: int, divisor: int, threads: int, epochs: float = 9.9
) -> str:
    """airbench94.py's text with this machine's changes (ValueError if one does not apply)."""
    widths = {"w1": 64 // divisor, "w2": 256 // divisor, "w3": 256 // divisor}
    changes = ALWAYS + (CPU_ONLY if device == "cpu" else [])
    for why, old, new in changes:
        if source.count(old) != 1:
            raise ValueError(
                f"airbench94.py does not contain {old!r} exactly once ({why}); this script "
                "expects legacy/airbench94.py of github.com/KellerJordan/cifar10-airbench"
            )
        source = source.replace(old, new.format(runs=runs, epochs=epochs, **widths))
    if device == "cpu":
        source = CPU_PRELUDE.format(threads=threads) + source
    return source


def write_airbench_data(data_path: str, work: Path) -> None:
    """``work/cifar10/{train,test}.pt`` in airbench's format: uint8 (N, 32, 32, 3) images,
    int64 labels, class names, from the CIFAR-10 copy globalpool reads."""
    from globalpool.data import load_dataset

    data = load_dataset("cifar10", path=data_path)
    folder = work / "cifar10"
    folder.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", data.train), ("test", data.test)):
        blob = {
            "images": split.images.permute(0, 2, 3, 1).contiguous(),
            "labels": split.labels.clone(),
            "classes": list(data.classes),
        }
        torch.save(blob, folder / f"{name}.pt")


_ROW = re.compile(r"^\|(.+)\|\s*$")


def parse_airbench_log(text: str) -> list[dict]:
    """Runs from airbench's table: per run the per-epoch (clock, test acc) curve and the
    final TTA accuracy and time."""
    runs: list[dict] = []
    current: dict | None = None
    for line in text.splitlines():
        match = _ROW.match(line.strip())
        if not match:
            continue
        cells = [c.strip() for c in match.group(1).split("|")]
        if len(cells) != 7 or cells[1] == "epoch":
            continue
        _run, epoch, _loss, _train_acc, val_acc, tta_acc, clock = cells
        if current is None:
            current = {"curve": []}
        if epoch == "eval":
            current["test_acc_tta"] = float(tta_acc)
            current["time_to_result_s"] = float(clock)
            runs.append(current)
            current = None
        else:
            current["curve"].append({"train_clock_s": float(clock), "test_acc": float(val_acc)})
    return runs


def run_airbench(args, work: Path) -> dict:
    source_text = Path(args.airbench).read_text(encoding="utf-8")
    adapted = adapt_airbench(
        source_text, device=args.device, runs=args.airbench_runs,
        divisor=args.width_divisor, threads=args.threads, epochs=args.airbench_epochs,
    )  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    script = work / "airbench94_adapted.py"
    script.write_text(adapted, encoding="utf-8")
    write_airbench_data(args.data, work)
    print(f"airbench94: {args.airbench_runs} run(s) on {args.device}, widths/{args.width_divisor}")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, script.name], cwd=work, capture_output=True, text=True, check=False
    )
    sys.stdout.write(proc.stdout)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"airbench94 failed with exit code {proc.returncode}")
    runs = parse_airbench_log(proc.stdout)
    timed = runs[1:] if len(runs) > 1 else runs  # the first run warms up (cuDNN autotuning)
    return {
        "source": str(args.airbench),
        "sha256": hashlib.sha256(source_text.encode()).hexdigest(),
        "device": args.device,
        "width_divisor": args.width_divisor,
        "runs": runs,
        "mean_test_acc_tta": sum(r["test_acc_tta"] for r in timed) / len(timed),
        "mean_time_to_result_s": sum(r["time_to_result_s"] for r in timed) / len(timed),
        "timed_runs": len(timed),
        "wall_s": time.perf_counter() - start,
    }


def run_globalpool(args, extra: list[str], out: Path) -> dict:
    from globalpool.cli.cmd_train import given_config_flags
    from globalpool.cli.main import build_parser
    from globalpool.experiment.speedrun import speedrun
    from globalpool.train.presets import get_recipe

    recipe = get_recipe(args.recipe)
    flags = build_parser().parse_args(["train", *extra])
    overrides = given_config_flags(flags)
    overrides["dataset_kwargs"] = {"path": args.data}
    overrides["device"] = args.device
    overrides["quiet"] = args.quiet
    return speedrun(
        recipe, seeds=args.seeds, out_dir=out / "globalpool", overrides=overrides,
        overwrite=True, command=None,
    )  # fmt: skip


def plot(result: dict, path: Path) -> None:
    from globalpool.analysis.render import save_figure
    from globalpool.experiment.speedrun import accuracy_vs_time_figure, curve_from_rows
    from globalpool.train.metrics import read_metrics

    curves = {}
    for entry in result.get("globalpool", {}).get("per_seed", []):
        rows = read_metrics(Path(entry["run_dir"]) / "metrics.jsonl")
        final = (entry["time_to_result_s"], entry["test_acc_tta"] or entry["test_acc"])
        curves[f"globalpool seed {entry['seed']}"] = curve_from_rows(rows, final)
    for i, run in enumerate(result.get("airbench", {}).get("runs", [])):
        final = (run["time_to_result_s"], run["test_acc_tta"])
        curves[f"airbench94 run {i}"] = curve_from_rows(run["curve"], final)
    save_figure(
        accuracy_vs_time_figure(curves, result.get("target", 0.94), result.get("budget_s", 600)),
        path,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    if argv[:1] == ["--table"]:
        from globalpool.experiment.speedrun import records_text

        print(records_text([json.loads(Path(p).read_text(encoding="utf-8")) for p in argv[1:]]))
        return 0
    command = shlex.join(["python", "benchmarks/bench_speedrun.py", *sys.argv[1:]])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--airbench", help="path of airbench's legacy/airbench94.py")
    parser.add_argument("--data", required=True, help="CIFAR-10 (e.g. cifar10-jpg.tar.gz)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--airbench-runs", type=int, default=1)
    parser.add_argument("--airbench-epochs", type=float, default=9.9, help="its schedule's length")
    parser.add_argument("--width-divisor", type=int, default=1, choices=[1, 2, 4])
    parser.add_argument("--recipe", default="cifar10-85", help="globalpool recipe ('' = none)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--globalpool-result",
        help="speedrun.json of a finished `globalpool speedrun` on the same machine and data, "
        "used instead of running the recipe again (its runs stay where they are)",
    )
    parser.add_argument("--out", default="runs/bench-speedrun")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--show-changes", action="store_true", help="print the changes, stop")
    args = parser.parse_args(argv)
    if args.show_changes:
        for why, old, new in ALWAYS + CPU_ONLY:
            print(f"{why}: {old!r} -> {new!r}")
        return 0
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from globalpool.machine import isa_caps, machine_line

    result: dict = {"device": args.device, "threads": args.threads, "torch": torch.__version__,
                    "cpu": machine_line(), "isa_caps": isa_caps(), "command": command}  # fmt: skip
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
    if args.airbench:
        result["airbench"] = run_airbench(args, out / "airbench")
    if args.globalpool_result:
        gp = json.loads(Path(args.globalpool_result).read_text(encoding="utf-8"))
        args.recipe = gp["recipe"]
        result.update(globalpool=gp, target=gp["target"], budget_s=gp["budget_s"])
    elif args.recipe:
        gp = run_globalpool(args, extra, out)
        result.update(globalpool=gp, target=gp["target"], budget_s=gp["budget_s"])
    (out / "bench_speedrun.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out / "accuracy_vs_time.png")
    if "airbench" in result:
        a = result["airbench"]
        print(
            f"airbench94 (widths/{a['width_divisor']}): TTA test "
            f"{100 * a['mean_test_acc_tta']:.2f}% in {a['mean_time_to_result_s']:.1f} s "
            f"(mean of {a['timed_runs']} run(s))"
        )
    if "globalpool" in result:
        agg = result["globalpool"]["aggregate"]
        print(
            f"globalpool {args.recipe}: TTA test {100 * agg['test_acc_tta']['mean']:.2f}% "
            f"(no TTA {100 * agg['test_acc']['mean']:.2f}%) in "
            f"{agg['time_to_result_s']['mean']:.1f} s (mean of {agg['seeds']} seed(s))"
        )
    print(f"wrote {out / 'bench_speedrun.json'} and {out / 'accuracy_vs_time.png'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
