"""Reproductions: the recorded results of ``globalpool reproduce`` (no training here).

Each claim's table and figure come from ``benchmarks/results/reproduce/<name>.json`` and
``<name>.png``, written by the command shown on the page (see BENCHMARKS.md); the build
only formats them, so it takes a second.
"""

from __future__ import annotations

import json
import shutil

from _common import ROOT, parse_args, write

from globalpool.experiment.claims import CLAIMS
from globalpool.experiment.reproduce import TRAINED, markdown_table, verdicts_table

DEPENDS: list[str] = []
RESULTS = ROOT / "benchmarks" / "results" / "reproduce"
# A literal list (docs/hooks.py reads it without running the script).
READS = [
    "benchmarks/results/reproduce/article-fmnist.json",
    "benchmarks/results/reproduce/article-fmnist.png",
    "benchmarks/results/reproduce/nin-heads-cifar10.json",
    "benchmarks/results/reproduce/nin-heads-cifar10.png",
    "benchmarks/results/reproduce/overfitting-vs-data.json",
    "benchmarks/results/reproduce/overfitting-vs-data.png",
    "benchmarks/results/reproduce/overfitting-vs-data-fmnist.json",
    "benchmarks/results/reproduce/overfitting-vs-data-fmnist.png",
    "benchmarks/results/reproduce/cam-localization.json",
    "benchmarks/results/reproduce/cam-localization.png",
    "benchmarks/results/reproduce/cam-localization-fashion.json",
    "benchmarks/results/reproduce/cam-localization-fashion.png",
    "benchmarks/results/reproduce/overfitting-vs-data-vgg.json",
    "benchmarks/results/reproduce/overfitting-vs-data-vgg.png",
    "benchmarks/results/reproduce/cam-localization-cifar.json",
    "benchmarks/results/reproduce/cam-localization-cifar.png",
]


def main() -> None:
    args = parse_args("reproductions")
    for name in CLAIMS:
        record = RESULTS / f"{name}.json"
        if not record.is_file():
            write(args, f"{name}.md", f"*No recorded result of `{name}` yet.*")
            continue
        result = json.loads(record.read_text(encoding="utf-8"))
        shutil.copyfile(RESULTS / f"{name}.png", args.out / f"{name}.png")
        seeds = ", ".join(map(str, result["seeds"]))
        commands = result.get("commands") or [result["command"]]
        how = (
            f"Recorded with `{commands[0]}`"
            if len(commands) == 1
            else "Recorded in pieces, each reusing the record before it: "
            + "; then ".join(f"`{c}`" for c in commands)
        )
        text = [
            f"{how} (protocol **{result['protocol']}**, seeds "
            f"{seeds}) on {result['cpu']}, {result['device']}: "
            f"{result['train_time_s'] / 60:.0f} min of training in all.",
            "",
            markdown_table(result),
            "",
            f"Verdicts (Welch's t over the seeds at p < 0.05; a head below {100 * TRAINED:.0f}% "
            "training accuracy in any seed gets none):",
            "",
            verdicts_table(result),
            "",
            f"Published figures: {result['published_note']}.",
            "",
            f"![{name}: ours beside the published figure](gen/reproductions/{name}.png)",
        ]
        write(args, f"{name}.md", "\n".join(text))


if __name__ == "__main__":
    main()
