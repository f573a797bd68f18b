"""Training-step time of a recipe's network in float32 and under bf16 autocast, side by side.

What ``amp: auto`` decides from the CPU's flags (``globalpool.machine.native_bf16``), this
measures: one SGD step (forward, backward, update) of the recipe's model on random
32x32 images, float32 and bf16 autocast timed in turns, round by round, each keeping its
fastest round, so a slow spell of a shared machine hits both alike. The images/s of each
also give the recipe's expected training time (images per run / images/s).

``--variants`` times other variants of the step beside them, each one of the config's
"Speed" settings changed from the recipe's (``VARIANTS``): NCHW memory instead of
channels-last, the whole model under torch.compile; what the float32 step on a CPU
without native bf16 could gain from a setting, measured in one run.

    python benchmarks/bench_amp.py --recipe cifar10-94
    python benchmarks/bench_amp.py --recipe cifar10-90 --rounds 5
    python benchmarks/bench_amp.py --recipe cifar10-94 --profile 12   # + where a step's time goes
    python benchmarks/bench_amp.py --recipe cifar10-94 --precisions float32 --profile 15 \
        --json R.json   # float32 only (bf16 is slow where it is emulated), as a JSON record
    python benchmarks/bench_amp.py --recipe cifar10-94 --variants float32 "float32, NCHW" \
        "float32, compiled"   # the float32 step beside two other Speed settings
    python benchmarks/bench_amp.py --table R.json   # a record as BENCHMARKS.md shows it
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import torch
from torch import nn

from globalpool.machine import caps_prefix, isa_caps, machine_line, native_bf16
from globalpool.models import create_model
from globalpool.train.presets import get_recipe, list_recipes


def make_step(model: nn.Module, batch: int, amp: bool, channels_last: bool = True):
    """A closure running one training step of ``model`` on a fixed random batch
    (N, 3, 32, 32), in channels-last memory or NCHW."""
    x = torch.randn(batch, 3, 32, 32)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


# Each variant: bf16 autocast or not, and the config's Speed settings channels_last and
# compile where it changes them from the recipe's own (cifar10-*: channels-last, eager).
VARIANTS = {
    "float32": {"amp": False},
    "bf16 autocast": {"amp": True},
    "float32, NCHW": {"amp": False, "channels_last": False},
    "float32, compiled": {"amp": False, "compile": True},
}
PRECISIONS = ["float32", "bf16 autocast"]  # the default pair


def profile_step(step, top: int) -> tuple[str, list[dict]]:
    """torch.profiler on one ``step``: its table of the ``top`` ops by self CPU time, and
    the same ops as dicts (name, calls, self CPU ms, share of the step's self CPU time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    averages = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in averages) or 1.0
    ops = sorted(averages, key=lambda e: -e.self_cpu_time_total)[:top]
    rows = [{"op": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3,
             "share": e.self_cpu_time_total / total} for e in ops]  # fmt: skip
    return averages.table(sort_by="self_cpu_time_total", row_limit=top), rows


def record_table(record: dict) -> str:
    """A ``--json`` record as BENCHMARKS.md shows it: machine and command, the step time
    per variant (beside float32's, and with the first step's time, when several were
    timed), then each profiled step's top ops by self CPU time."""
    caps = caps_prefix(record["isa_caps"])
    lines = [
        f"Machine: {record['machine']}; torch {record['torch']}, {record['threads']} "
        f"threads; {record['date']}.", "", "```bash", caps + record["command"], "```", "",
        f"| {record['recipe']}, batch {record['batch']} | s per step | images/s "
        "| the recipe's training passes at this speed |", "|---|--:|--:|--:|",
    ]  # fmt: skip
    base = {row["precision"]: row["s_per_step"] for row in record["rows"]}.get("float32")
    compared = len(record["rows"]) > 1 and base is not None
    if compared:  # a run of variants: each beside float32, and its first (compiling) step
        lines[-2] += " step time / float32's | first step s |"
        lines[-1] += "--:|--:|"
    for row in record["rows"]:
        passes = (
            "-" if row["training_passes_min"] is None else f"{row['training_passes_min']:.0f} min"
        )
        lines.append(f"| {row['precision']} | {row['s_per_step']:.3f} | "
                     f"{row['images_per_s']:.0f} | {passes} |")  # fmt: skip
        if compared:
            lines[-1] += f" {row['s_per_step'] / base:.2f} | {row['first_step_s']:.1f} |"
    for precision, ops in record["profiles"].items():
        lines += ["", f"| one step, {precision}: op | calls | self CPU ms | share of the step |",
                  "|---|--:|--:|--:|"]  # fmt: skip
        lines += [f"| `{op['op']}` | {op['calls']} | {op['self_cpu_ms']:.1f} | "
                  f"{100 * op['share']:.1f}% |" for op in ops]  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--table"]:
        for path in argv[1:]:
            with open(path, encoding="utf-8") as fh:
                print(record_table(json.load(fh)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="cifar10-94", choices=list_recipes())
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per variant")
    parser.add_argument("--steps", type=int, default=3, help="steps per round")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N",
        help="after timing, print the N ops with the most self CPU time in one step of each",
    )  # fmt: skip
    parser.add_argument(
        "--variants", "--precisions", dest="variants", nargs="+", default=PRECISIONS,
        choices=list(VARIANTS), metavar="V",
        help=f"which to time, of {', '.join(map(repr, VARIANTS))} (default the first two)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write the results as a record")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/bench_amp.py", *sys.argv[1:]])
    if args.threads:
        torch.set_num_threads(args.threads)
    config = get_recipe(args.recipe).config()
    batch = args.batch_size or config.batch_size
    torch.manual_seed(0)
    steps = {}
    warmup_s = {}
    for name in args.variants:
        variant = {"channels_last": config.channels_last, "compile": config.compile,
                   **VARIANTS[name]}  # fmt: skip
        model = create_model(
            config.model, 10, head=config.head, pool=config.pool,
            head_kwargs=config.head_kwargs, pool_kwargs=config.pool_kwargs,
            **config.model_kwargs,
        )  # fmt: skip
        if variant["channels_last"]:
            model.to(memory_format=torch.channels_last)
        model.train()
        steps[name] = make_step(
            torch.compile(model) if variant["compile"] else model, batch, variant["amp"],
            variant["channels_last"],
        )  # fmt: skip
        start = time.perf_counter()
        steps[name]()  # warm-up: allocator, oneDNN primitive creation, compilation
        warmup_s[name] = time.perf_counter() - start
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / args.steps)
    # CIFAR-10's 50,000 training images less the recipe's validation split.
    train_images = round(50_000 * (1 - config.val_fraction))
    images = config.epochs * train_images if config.dataset == "cifar10" else None
    print(f"bench_amp: {args.recipe}, batch {batch}, {torch.get_num_threads()} threads")
    print(f"machine: {machine_line()}; amp 'auto' picks "
          f"{'bf16' if native_bf16('cpu') else 'float32'} here")  # fmt: skip
    print("| precision | s per step | images/s | recipe's training passes at this speed |")
    print("|---|--:|--:|--:|")
    rows = []
    for name, seconds in best.items():
        rate = batch / seconds
        eta = f"{images / rate / 60:.0f} min" if images else "-"
        print(f"| {name} | {seconds:.3f} | {rate:.0f} | {eta} |")
        rows.append({"precision": name, "s_per_step": seconds, "images_per_s": rate,
                     "training_passes_min": images / rate / 60 if images else None,
                     "first_step_s": warmup_s[name]})  # fmt: skip
    for name in [n for n in best if n != "float32"] if "float32" in best else []:
        print(f"\n{name} step time / float32 step time: {best[name] / best['float32']:.2f}")
    profiles = {}
    for name, step in steps.items() if args.profile else ():
        table, profiles[name] = profile_step(step, args.profile)
        print(f"\none step, {name}, ops by self CPU time:\n{table}")
    if args.json:
        record = {
            "command": command, "date": time.strftime("%Y-%m-%d"), "machine": machine_line(),
            "isa_caps": isa_caps(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "recipe": args.recipe, "batch": batch,
            "rounds": args.rounds, "steps": args.steps, "rows": rows, "profiles": profiles,
        }  # fmt: skip
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
