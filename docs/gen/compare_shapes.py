"""GAP versus GMP versus FC: a ``globalpool compare`` run on ``shapes``, its report pulled
into the page, and the recorded CIFAR-10 result read from BENCHMARKS.md."""

from __future__ import annotations

import json
import re
import shutil

from _common import ROOT, markdown_sections, parse_args, run_cli, shift_headings, write

DEPENDS: list[str] = []
READS = ["BENCHMARKS.md"]

HEADS = "fc:dropout=0,fc:dropout=0.5,classmap:avg,classmap:max,pool-linear:avg"


def main() -> None:
    args = parse_args("compare_shapes")
    if args.quick:
        budget = {"n_train": 200, "n_test": 200}, 1, "fc:dropout=0,classmap:avg,classmap:max"
    else:
        budget = {"n_train": 1000, "n_test": 1000}, 8, HEADS
    dataset_kwargs, epochs, heads = budget
    argv = [
        "compare", "--heads", heads, "--model", "fastnet",
        "--model-kwargs", '{"widths": [24, 48, 96]}',
        "--dataset", "shapes", "--dataset-kwargs", json.dumps(dataset_kwargs),
        "--epochs", str(epochs), "--batch-size", "64", "--seeds", "0",
        "--quiet", "--out", "compare",
    ]  # fmt: skip
    _, output = run_cli(argv, cwd=args.out)
    report_dir = args.out / "compare"

    # the report's Markdown, its headings under the page's, its images beside the snippet
    text = (report_dir / "report.md").read_text(encoding="utf-8")
    text = text.split("\n", 1)[1]  # drop the report's own title
    text = re.sub(r"^dataset: .*? · generated .*$", "", text, count=1, flags=re.MULTILINE)
    text = shift_headings(text, 3)
    for png in sorted((report_dir / "report_assets").glob("*.png")):
        shutil.copy(png, args.out / png.name)
    text = text.replace("](report_assets/", f"](gen/{args.name}/")
    write(args, "report.md", text)
    # The command is written in compare.md itself; the build adds what it printed.
    lines = output.rstrip("\n").splitlines()[-12:]
    write(args, "command.md", "```text\n" + "\n".join(lines) + "\n```")
    summaries = {}
    for line in json.loads((report_dir / "compare.json").read_text()).get("heads", []):
        label = line.get("label") if isinstance(line, dict) else None
        if not label:
            continue
        run = report_dir / label / "seed0"  # --seeds 0: globalpool.experiment.runs.run_dir
        if (run / "summary.json").is_file():
            summaries[label] = json.loads((run / "summary.json").read_text())
    write(args, "summaries.json", json.dumps(summaries, indent=1))

    # the recorded CIFAR-10 result
    found = [
        (level, title, body)
        for level, title, body in markdown_sections(ROOT / "BENCHMARKS.md")
        if "cifar" in title.lower() and ("compare" in title.lower() or "head" in title.lower())
    ]
    if found:
        _level, title, body = found[0]
        recorded = (
            f'The section "{title}" of `BENCHMARKS.md` (repository root), included as '
            f"recorded there (it says which command, machine and date produced it):\n\n"
            + shift_headings(body, 4)
        )
        recorded = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", recorded)  # its images live in the repo
    else:
        recorded = (
            '!!! note "Not recorded yet"\n'
            "    `BENCHMARKS.md` holds no CIFAR-10 comparison yet. Produce one on a GPU with\n"
            "    `globalpool compare --dataset cifar10 --epochs 30 --out runs/compare-cifar10`;\n"
            "    this page picks up the section whose title names CIFAR-10 and the head\n"
            "    comparison as soon as it is recorded."
        )
    write(args, "cifar10.md", recorded)


if __name__ == "__main__":
    main()
