"""Reproductions: the recorded results of ``globalpool reproduce`` (no training here).

Each record's table and figure come from ``benchmarks/results/reproduce/<record>.json`` and
``<record>.png``, written by the command shown on the page (see BENCHMARKS.md); the build
only formats them, so it takes a second. A claim's default protocol is recorded as
``<claim>.json``; another protocol of it as ``<claim>-<protocol>.json`` (its own section).
"""

from __future__ import annotations

import json
import shutil

from _common import ROOT, parse_args, write

from globalpool.experiment.claims import CLAIMS
from globalpool.experiment.reproduce import markdown_table, record_header, verdicts_text

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
    "benchmarks/results/reproduce/nin-heads-cifar10-cpu-fit.json",
    "benchmarks/results/reproduce/nin-heads-cifar10-cpu-fit.png",
]
# Every record named above gets a page section, each claim without one a placeholder.
RECORDS = [r.rsplit("/", 1)[1].removesuffix(".json") for r in READS if r.endswith(".json")]


def main() -> None:
    args = parse_args("reproductions")
    for name in CLAIMS:
        if name not in RECORDS:
            write(args, f"{name}.md", f"*No recorded result of `{name}` yet.*")
    for name in RECORDS:
        record = RESULTS / f"{name}.json"
        if not record.is_file():  # a protocol whose pieces are still running
            write(args, f"{name}.md", f"*No recorded result of `{name}` yet.*")
            continue
        result = json.loads(record.read_text(encoding="utf-8"))
        shutil.copyfile(RESULTS / f"{name}.png", args.out / f"{name}.png")
        text = [
            record_header(result),
            "",
            markdown_table(result),
            "",
            verdicts_text(result),
            "",
            f"Published figures: {result['published_note']}.",
            "",
            f"![{name}: ours beside the published figure](gen/reproductions/{name}.png)",
        ]
        write(args, f"{name}.md", "\n".join(text))


if __name__ == "__main__":
    main()
