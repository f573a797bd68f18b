"""GAP versus GMP versus FC: a ``globalpool compare`` run on ``shapes``, its report pulled
into the page, and the recorded CIFAR-10 head comparison formatted from its record."""

from __future__ import annotations

import json
import re
import shutil

from _common import ROOT, parse_args, run_cli, shift_headings, write

from globalpool.experiment.reproduce import markdown_table, verdicts_text

DEPENDS: list[str] = []
# A literal list (docs/hooks.py reads it without running the script).
READS = ["benchmarks/results/reproduce/nin-heads-cifar10-cpu-fit.json"]

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

    write(args, "cifar10.md", recorded_cifar10())


def recorded_cifar10() -> str:
    """The CIFAR-10 head comparison of NIN's Table 5 (one backbone, three heads, same
    training, 3 seeds), formatted from its record: command, machine, table, verdicts."""
    path = ROOT / READS[0]
    if not path.is_file():
        return '!!! note "Not recorded yet"\n    No CIFAR-10 head comparison is recorded yet.\n'
    record = json.loads(path.read_text(encoding="utf-8"))
    commands = record.get("commands") or [record["command"]]
    return "\n".join([
        f"`{path.relative_to(ROOT).as_posix()}`: NIN's three heads on CIFAR-10 (FC, FC + "
        "dropout, GAP class maps; the same backbone and training, "
        f"{len(record['seeds'])} seeds), written in pieces by",
        "",
        "```bash", *commands, "```",
        "",
        f"on {record['cpu']}, {record['device']}, "
        f"{record['train_time_s'] / 60:.0f} min of training in all. Protocol "
        f"{record['protocol']}: {record['choices'][record['protocol'] + ' protocol']}.",
        "",
        markdown_table(record),
        "",
        verdicts_text(record),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
