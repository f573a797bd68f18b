"""``speedrun``: a recipe trained with several seeds, timed to its accuracy target.

Each seed is one ordinary training run (``out_dir/seed<k>/``: config, metrics, checkpoints,
summary). Its clock counts what reaching the result needs: the data-dependent
initialisation, every training pass (batches are made on the fly, so data preparation is
inside) and the final test evaluation with test-time augmentation. It leaves out the
one-time dataset decode, the per-epoch validation pass and the per-epoch test curve, which
only report (nothing reads them to steer training). Then ``out_dir`` gets:

- ``speedrun.json``: per seed and in aggregate (mean, standard deviation, min, max) the
  test accuracy with and without test-time augmentation and the time to the result;
- ``speedrun.md``: the same as a table, with the command;
- ``accuracy_vs_time.png``: test accuracy against the training clock, every seed (per
  epoch without test-time augmentation; the final result with it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from globalpool.analysis.markup import markdown_table
from globalpool.analysis.render import new_figure, save_figure
from globalpool.analysis.stats import describe
from globalpool.atomic import atomic_write_text
from globalpool.experiment.runs import Job, run_or_reuse
from globalpool.machine import caps_prefix, isa_caps, machine_line
from globalpool.train.metrics import read_metrics
from globalpool.train.presets import Recipe

__all__ = [
    "accuracy_vs_time_figure", "aggregate", "curve_from_rows", "record_commands",
    "records_table", "records_text", "speedrun", "time_to_target",
]  # fmt: skip


def time_to_target(rows: Sequence[dict], target: float, key: str = "test_acc") -> float | None:
    """Training clock (s) of the first epoch whose ``key`` reaches ``target``, else None."""
    for row in rows:
        value = row.get(key)
        if value is not None and value >= target:
            return float(row["train_clock_s"])
    return None


def curve_from_rows(rows: Sequence[dict], final: tuple[float, float] | None = None) -> dict:
    """A curve for :func:`accuracy_vs_time_figure` from metrics rows (``train_clock_s``,
    ``test_acc``) and the final ``(time to result s, accuracy with TTA)``."""
    points = [(r["train_clock_s"], r["test_acc"]) for r in rows if r.get("test_acc") is not None]
    return {"points": points, "final": final}


def aggregate(per_seed: Sequence[dict], target: float) -> dict[str, Any]:
    """Mean/std/min/max over seeds of the accuracies and the time to the result, and how
    many seeds reached ``target`` with TTA."""
    tta = [s["test_acc_tta"] for s in per_seed]
    return {
        "test_acc": describe([s["test_acc"] for s in per_seed]),
        "test_acc_tta": describe(tta),
        "time_to_result_s": describe([s["time_to_result_s"] for s in per_seed]),
        "seeds_reaching_target": sum(1 for v in tta if v is not None and v >= target),
        "seeds": len(per_seed),
    }


def accuracy_vs_time_figure(curves: dict[str, dict], target: float, budget_s: float):
    """Test accuracy against the training clock (minutes), one line per run.

    Args:
        curves: label -> ``{"points": [(clock s, accuracy)...], "final": (s, acc) | None}``:
            the per-epoch single-view accuracy, and the final result with test-time
            augmentation at its time to result (a star).
        target, budget_s: drawn as a horizontal and a vertical line.
    """

    fig = new_figure(7.0, 4.2)
    ax = fig.subplots()
    lowest = highest = 100 * target
    for i, (label, curve) in enumerate(curves.items()):
        color = f"C{i % 10}"
        minutes = [t / 60 for t, _ in curve["points"]]
        accs = [100 * a for _, a in curve["points"]]
        ax.plot(minutes, accs, "-o", ms=3, color=color, label=label)
        if curve.get("final") is not None:
            t, acc = curve["final"]
            ax.plot([t / 60], [100 * acc], "*", ms=11, color=color)
            highest = max(highest, 100 * acc)
        highest = max([highest, *accs])
        lowest = min([lowest, *accs[len(accs) // 2 :]])
    ax.axhline(100 * target, color="grey", lw=0.8)
    ax.axvline(budget_s / 60, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("training clock (minutes)")
    ax.set_ylabel("test accuracy (%)   (star: final, with TTA)")
    # Room above the best point: on the official data the recipes pass their targets by
    # up to 5 points, and a final star on the frame's edge is half hidden.
    ax.set_ylim(max(0.0, lowest - 5), min(100.0, max(100 * target + 5, highest + 1.5)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _torch_version() -> str:
    import torch

    return torch.__version__


def _pct(values: Sequence[float]) -> str:
    """``90.08 ± 0.22% (89.93, 90.33, 89.98)``: mean ± sd over runs, then each run."""
    d = describe(values)
    if d["n"] == 0:
        return "n/a"
    each = f" ({', '.join(f'{100 * v:.2f}' for v in values)})" if d["n"] > 1 else ""
    spread = f" ± {100 * d['std']:.2f}" if d["n"] > 1 else ""
    return f"{100 * d['mean']:.2f}{spread}%{each}"


def _seconds(values: Sequence[float]) -> str:
    """``256 ± 21 s (232-269)``: mean ± sd over runs, then the range."""
    d = describe(values)
    if d["n"] == 1:
        return f"{d['mean']:,.0f} s"
    return f"{d['mean']:,.0f} ± {d['std']:,.0f} s ({d['min']:,.0f}-{d['max']:,.0f})"


def _within(accs: Sequence[float], times: Sequence[float], target: float, budget_s: float):
    hits = sum(1 for a, t in zip(accs, times, strict=True) if a >= target and t <= budget_s)
    return f"{hits} of {len(accs)}"


def _speedrun_row(record: dict) -> list[str]:
    per_seed = record["per_seed"]
    settings = record["settings"]
    precision = {"none": "float32", "bf16": "bf16 autocast"}.get(settings["amp"], settings["amp"])
    final = [s["test_acc_tta"] if s["test_acc_tta"] is not None else s["test_acc"]
             for s in per_seed]  # fmt: skip
    times = [s["time_to_result_s"] for s in per_seed]
    return [
        f"globalpool {record['recipe']}, {settings['epochs']} epochs, {precision}",
        str(len(per_seed)),
        _pct([s["test_acc_tta"] for s in per_seed if s["test_acc_tta"] is not None]),
        _pct([s["test_acc"] for s in per_seed]),
        _seconds(times),
        _within(final, times, record["target"], record["budget_s"]),
    ]


def _airbench_row(bench: dict) -> list[str]:
    airbench = bench["airbench"]
    runs = airbench["runs"]
    precision = "float32" if airbench["device"] == "cpu" else "float16"
    accs = [r["test_acc_tta"] for r in runs]
    times = [r["time_to_result_s"] for r in runs]
    return [
        f"airbench94, widths/{airbench['width_divisor']}, {precision}",
        f"{len(runs)} run{'s' if len(runs) > 1 else ''}",
        _pct(accs),
        _pct([r["curve"][-1]["test_acc"] for r in runs]) + " (last epoch)",
        _seconds(times),
        _within(accs, times, bench["target"], bench["budget_s"]),
    ]


def records_table(records: Sequence[dict]) -> str:
    """A markdown table of speedrun records, one row per recipe run over seeds.

    Args:
        records: ``speedrun.json`` of ``globalpool speedrun`` (one row) or
            ``bench_speedrun.json`` of ``benchmarks/bench_speedrun.py`` (airbench94's row,
            then the globalpool recipe's beside it).

    Returns:
        columns: run, seeds, test accuracy with and without test-time augmentation (mean
        ± sd over seeds, then each seed), time to result (mean ± sd, range) and how many
        seeds reached the target within the budget (both together).
    """
    rows = []
    for record in records:
        if "airbench" in record:
            rows.append(_airbench_row(record))
        speedrun_record = record.get("globalpool", record)
        if "per_seed" in speedrun_record:
            rows.append(_speedrun_row(speedrun_record))
    first = next(r.get("globalpool", r) for r in records)
    reaching = f"reaching {100 * first['target']:.0f}% in {first['budget_s'] / 60:.0f} min"
    header = ["run", "seeds", "test acc, with TTA", "test acc, no TTA", "time to result",
              reaching]  # fmt: skip
    return markdown_table(header, rows)


def record_commands(record: dict) -> list[str]:
    """The commands that wrote ``record`` (a speedrun or bench_speedrun record), with the
    instruction-set caps it ran under as environment variables before each."""
    caps = record.get("isa_caps") or record.get("globalpool", {}).get("isa_caps") or {}
    prefix = caps_prefix(caps)
    commands = [c for c in (record.get("globalpool", {}).get("command"), record.get("command"))
                if c]  # fmt: skip
    return [prefix + c for c in commands]


def records_text(records: Sequence[dict]) -> str:
    """Speedrun records as BENCHMARKS.md and the guide show them: the CPU, the commands
    (with the instruction-set caps they ran under), then :func:`records_table`."""
    cpus = sorted({r.get("cpu") or r.get("globalpool", {}).get("cpu") or "?" for r in records})
    commands = [c for r in records for c in record_commands(r)]
    return "\n".join([
        f"Machine: {'; '.join(cpus)}.", "", "```bash", *commands, "```", "",
        records_table(records),
    ])  # fmt: skip


def _markdown(result: dict) -> str:
    agg = result["aggregate"]

    def pct(s):
        return "n/a" if s["mean"] is None else f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"

    t = agg["time_to_result_s"]
    lines = [
        f"# Speedrun {result['recipe']}: {100 * result['target']:.0f}% test accuracy "
        f"in under {result['budget_s'] / 60:.0f} min ({result['hardware']})",
        "",
        f"Command: `{result['command']}`" if result.get("command") else "",
        f"Device: {result['device']}. Seeds: {', '.join(map(str, result['seeds']))}.",
        "",
    ]
    rows = []
    for s in result["per_seed"]:
        tta = "n/a" if s["test_acc_tta"] is None else f"{100 * s['test_acc_tta']:.2f}%"
        first = "not reached" if s["epoch_at_target_s"] is None else f"{s['epoch_at_target_s']:.0f}"
        rows.append([str(s["seed"]), f"{100 * s['test_acc']:.2f}%", tta,
                     f"{s['time_to_result_s']:.0f}", first])  # fmt: skip
    header = ["seed", "test acc", "test acc (TTA)", "time to result (s)",
              "first epoch at target (s)"]  # fmt: skip
    lines.append(markdown_table(header, rows))
    lines += [
        "",
        f"Mean ± sd over {agg['seeds']} seed(s): test {pct(agg['test_acc'])}%, with TTA "
        f"{pct(agg['test_acc_tta'])}%, time to result {t['mean']:.0f} ± {t['std']:.0f} s "
        f"(min {t['min']:.0f}, max {t['max']:.0f}); {agg['seeds_reaching_target']} of "
        f"{agg['seeds']} reached the target.",
        "",
        "![test accuracy against training time](accuracy_vs_time.png)",
        "",
    ]
    return "\n".join(lines)


def _run_seed(recipe: Recipe, seed: int, out: Path, overrides: dict, overwrite: bool, log):
    """Train (or reuse) one seed of a speedrun: ``(entry, curve, device)``."""

    job = Job.plan(out, "", seed, recipe.config(**overrides).replace(test_curve=True))
    config = job.config
    summary, _ = run_or_reuse(job, overwrite=overwrite, say=log,
                              what=f"speedrun {recipe.name}: seed {seed}")  # fmt: skip
    rows = read_metrics(Path(config.out_dir) / "metrics.jsonl")
    key = "test_acc_tta" if summary["test_acc_tta"] is not None else "test_acc"
    final = summary[key]
    time_to_result = summary["train_clock_s"] + summary["final_eval_s"]
    entry = {
        "seed": seed,
        "run_dir": config.out_dir,
        "test_acc": summary["test_acc"],
        "test_acc_tta": summary["test_acc_tta"],
        "train_clock_s": summary["train_clock_s"],
        "time_to_result_s": time_to_result,
        "epoch_at_target_s": time_to_target(rows, recipe.target),
        "epochs": summary["epochs"],
    }
    reached = final >= recipe.target and time_to_result <= recipe.budget_s
    log(
        f"speedrun {recipe.name} seed {seed}: test {100 * summary['test_acc']:.2f}%"
        + (f", with {config.tta} TTA {100 * final:.2f}%" if key == "test_acc_tta" else "")
        + f" in {time_to_result:.1f} s of training clock "
        f"({'meets' if reached else 'misses'} {100 * recipe.target:.0f}% in "
        f"{recipe.budget_s / 60:.0f} min)"
    )
    return entry, curve_from_rows(rows, (time_to_result, final)), summary["device"]


def speedrun(
    recipe: Recipe,
    *,
    seeds: Sequence[int] = (0,),
    out_dir: str | os.PathLike = "runs/speedrun",
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``recipe`` once per seed into ``out_dir/seed<k>`` and write the speedrun files.

    Args:
        recipe: from :mod:`globalpool.train.presets`.
        seeds: one run each.
        overrides: :class:`~globalpool.train.TrainConfig` fields replacing the recipe's
            (``dataset_kwargs`` with the data path, ``device``, ``epochs``...).
        overwrite: the policy of :func:`globalpool.experiment.runs.run_or_reuse`: without
            it a seed that finished with the same settings is reused (so ``--seeds 0 1 2``
            after ``--seeds 0`` trains seeds 1 and 2 only) and one with other settings is
            refused; with it every seed trains again.
        command: the command line to record in the report.

    Returns:
        the dict written to ``speedrun.json``.
    """

    if not seeds:
        raise ValueError("speedrun needs at least one seed")
    if (overrides or {}).get("stop_after_epoch") is not None:
        # A speedrun times whole runs; a stopped one has no final result to time.
        raise ValueError(
            "speedrun times whole runs, so it does not take --stop-after-epoch; to try part "
            "of a recipe, train it: globalpool train --config OUT/seed0/config.json "
            "--stop-after-epoch E (or lower --epochs)"
        )
    out = Path(out_dir)
    per_seed, curves, device = [], {}, None
    for seed in seeds:
        entry, curves[f"seed {seed}"], device = _run_seed(
            recipe, int(seed), out, overrides or {}, overwrite, log
        )
        per_seed.append(entry)
    result = {
        "recipe": recipe.name,
        "target": recipe.target,
        "budget_s": recipe.budget_s,
        "hardware": recipe.hardware,
        "settings": recipe.config(**(overrides or {})).to_dict(),
        "device": device,
        "cpu": machine_line(),
        "isa_caps": isa_caps(),
        "torch": _torch_version(),
        "seeds": [int(s) for s in seeds],
        "command": command,
        "per_seed": per_seed,
        "aggregate": aggregate(per_seed, recipe.target),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_figure(
        accuracy_vs_time_figure(curves, recipe.target, recipe.budget_s),
        out / "accuracy_vs_time.png",
    )
    atomic_write_text(out / "speedrun.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / "speedrun.md", _markdown(result))
    agg = result["aggregate"]
    acc = agg["test_acc_tta"] if agg["test_acc_tta"]["n"] else agg["test_acc"]
    t = agg["time_to_result_s"]
    log(
        f"speedrun {recipe.name}: {len(seeds)} seed(s), test {100 * acc['mean']:.2f} ± "
        f"{100 * acc['std']:.2f}%, {t['mean']:.0f} ± {t['std']:.0f} s; {out}/speedrun.md"
    )
    return result
