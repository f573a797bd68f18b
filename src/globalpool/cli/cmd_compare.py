"""``globalpool compare``: one backbone with several heads, then the HTML/Markdown report.

With no arguments: the default network (fastnet) on the built-in ``shapes`` data, with
the heads ``fc`` (no dropout), ``fc`` + dropout 0.5, ``classmap`` + avg, ``classmap`` +
max and ``pool-linear`` + avg, into ``runs/compare``. Every ``globalpool train`` option
is accepted and applies to all heads (``--lr``, ``--optimizer``, ``--amp``...), except
the head settings, which ``--heads`` gives per head.

Example:
    globalpool compare
    globalpool compare --heads fc,classmap:avg,pool-linear:gem:p=3 --epochs 20 --out runs/c
    globalpool compare --report-only --out runs/c     # rebuild the report of finished runs
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from globalpool.cli.options import Range, in_range
from globalpool.experiment.runs import OVERWRITE_HELP

# Set per head by --heads; as plain flags they would be ambiguous.
_PER_HEAD = ("head", "pool", "head_kwargs", "pool_kwargs")
# Not part of what a run means (so left out of the explicit command).
_NOT_SETTINGS = ("quiet", "stop_after_epoch", "out_dir", "seed")  # seed: --seeds


def register(subparsers) -> None:
    from globalpool.cli.cmd_train import add_config_flags
    from globalpool.experiment.compare import COMPARE_DEFAULTS, COMPARE_SEEDS
    from globalpool.experiment.heads import DEFAULT_HEADS

    parser = subparsers.add_parser(
        "compare",
        help="train one backbone with several heads and write a comparison report",
        description="Train one backbone with several heads (same data, seed, budget and "
        "optimiser), then write OUT/report.html (self-contained) and OUT/report.md. "
        "Head specs: KIND[:POOL][:NAME=VALUE]..., e.g. fc:dropout=0.5, classmap:max, "
        "pool-linear:gem:p=3 (NAME=VALUE: head or pool arguments, or label=DIR).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--heads",
        metavar="SPECS",
        default=DEFAULT_HEADS,
        help=f"comma-separated head specs (default: {DEFAULT_HEADS})",
    )
    parser.add_argument("--config", metavar="FILE", help="base training config (config.json)")
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="do not train: rebuild the report from the finished runs in --out",
    )
    config_actions = add_config_flags(parser)
    # The compare budget differs from a single run's defaults: say so in --help.
    parser.add_argument(
        "--seeds",
        type=in_range(Range(int, 0)),
        nargs="+",
        default=list(COMPARE_SEEDS),
        help="train every head once per seed; the report gives mean ± sd and says whether "
        f"the seeds separate the heads; integers >= 0 (default: "
        f"{' '.join(map(str, COMPARE_SEEDS))})",
    )
    parser.add_argument(
        "--cam-methods",
        metavar="LIST",
        default="",
        help="comma-separated CAM methods (those of globalpool cam --method but auto) to "
        "score on every head: a methods x heads localization table in the report",
    )
    for action in config_actions:
        if action.dest == "seed":
            action.help = argparse.SUPPRESS  # --seeds
        elif action.dest in _PER_HEAD:
            action.help = argparse.SUPPRESS
        elif action.dest in COMPARE_DEFAULTS and action.help:
            default = COMPARE_DEFAULTS[action.dest]
            shown = json.dumps(default) if isinstance(default, dict) else default
            action.help = action.help.split(" (default:")[0] + f" (default: {shown})"
    parser.set_defaults(func=run)


def base_config_from_args(args: argparse.Namespace):
    """The base TrainConfig: compare defaults (or ``--config``) + the flags given."""
    from globalpool.cli.cmd_train import given_config_flags
    from globalpool.experiment.compare import default_compare_config
    from globalpool.train.config import TrainConfig

    given = given_config_flags(args)
    per_head = sorted(given.keys() & set(_PER_HEAD))
    if per_head:
        flags = ", ".join("--" + name.replace("_", "-") for name in per_head)
        raise ValueError(
            f"{flags} cannot be given to compare: heads are set per head with --heads "
            "(e.g. --heads fc:dropout=0.5,classmap:max,pool-linear:gem:p=3)"
        )
    base = TrainConfig.load(args.config) if args.config else default_compare_config()
    return base.replace(**given).validate()


def explicit_command(
    config, heads: str, seeds: list[int] | None = None, cam_methods: list[str] | None = None
) -> str:
    """A ``globalpool compare`` command line that sets every setting explicitly: run
    again, it plans the same jobs and so reuses every finished run."""
    import dataclasses

    from globalpool.experiment.compare import COMPARE_DEFAULTS
    from globalpool.train.config import TrainConfig

    plain = TrainConfig()
    parts = ["globalpool", "compare", "--heads", heads]
    for f in dataclasses.fields(TrainConfig):
        name = f.name
        if name in _PER_HEAD or name in _NOT_SETTINGS:
            continue
        value = getattr(config, name)
        if value == getattr(plain, name) and name not in COMPARE_DEFAULTS:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, dict):
            parts += [flag, json.dumps(value, sort_keys=True)]
        elif isinstance(value, (tuple, list)):
            parts += [flag, *map(str, value)]
        elif value is not None:
            parts += [flag, str(value)]
    parts += ["--seeds", *map(str, seeds if seeds is not None else [config.seed])]
    if cam_methods:
        parts += ["--cam-methods", ",".join(cam_methods)]
    parts += ["--out", config.out_dir]
    return shlex.join(parts)


def _command_as_typed() -> str | None:
    """The command line of this process, when it is the globalpool command."""
    prog = Path(sys.argv[0]).name
    if prog in ("globalpool", "__main__.py", "-m") and "compare" in sys.argv[1:]:
        return shlex.join(["globalpool", *sys.argv[1:]])
    return None


def run(args: argparse.Namespace) -> int:
    from globalpool.cli.cmd_train import given_config_flags
    from globalpool.experiment.compare import compare
    from globalpool.experiment.heads import parse_heads
    from globalpool.experiment.runs import run_dir

    config = base_config_from_args(args)
    specs = parse_heads(args.heads)
    heads_text = ",".join(s.to_text() for s in specs)
    out = Path(config.out_dir)
    status = 0

    if "seed" in given_config_flags(args):
        raise ValueError("compare takes --seeds (one run per head and seed), not --seed")
    seeds = [int(k) for k in args.seeds]
    from globalpool.analysis.cam_family import FAMILY

    cam_methods = [m for m in args.cam_methods.split(",") if m]
    unknown = [m for m in cam_methods if m not in FAMILY]
    if unknown:
        raise ValueError(f"unknown CAM method(s) {unknown}; expected some of {', '.join(FAMILY)}")
    typed = _command_as_typed()
    explicit = explicit_command(config, heads_text, seeds, cam_methods)
    command = (
        explicit if typed is None else f"{typed}\n# the same, every setting explicit:\n{explicit}"
    )
    if args.report_only:
        from globalpool.analysis.evaluation import evaluate_run
        from globalpool.analysis.report import write_report

        saved = out / "compare.json"
        if saved.is_file():  # the plan of the compare that trained the runs
            plan = json.loads(saved.read_text(encoding="utf-8"))
            command = plan.get("command") or command
            seeds = plan.get("seeds") or [plan["base_config"]["seed"]]
        runs = {s.label: [run_dir(out, s.label, k) for k in seeds] for s in specs}
        missing = [str(d) for ds in runs.values() for d in ds if not (d / "summary.json").is_file()]
        if missing:
            raise FileNotFoundError(
                f"--report-only needs finished runs; missing: {', '.join(missing)}"
            )
        seed_runs = {
            label: [json.loads((d / "summary.json").read_text(encoding="utf-8")) for d in ds]
            for label, ds in runs.items()
        }
        evaluations = {label: [evaluate_run(d) for d in ds] for label, ds in runs.items()}
        paths = write_report(
            out, [ds[0] for ds in runs.values()], labels=list(runs), command=command,
            seed_runs=seed_runs if len(seeds) > 1 else None, cam_methods=cam_methods,
            evaluations=evaluations,
        )  # fmt: skip
        report_line = f"report: {paths['html']} and {paths['markdown']}"
    else:
        evaluations = None  # compare scores each run (evaluation.json); read back below
        from globalpool.train import TrainingDiverged

        held: list[str] = []  # the report's line goes last, under the claims

        def log(message: str) -> None:
            (held.append if message.startswith("report: ") else print)(message)

        try:
            compare(
                config, specs, out, command=command, overwrite=args.overwrite, seeds=seeds,
                cam_methods=cam_methods, log=log,
            )  # fmt: skip
        except TrainingDiverged as err:
            print(f"globalpool compare: {err}", file=sys.stderr)
            status = 1
        report_line = held[-1] if held else None

    print_claims(out, specs, seeds, evaluations)
    if report_line:
        print(report_line)
    return status


def print_claims(out: Path, specs, seeds: list[int], evaluations: dict | None = None) -> None:
    """The claims' verdicts over the seeds (``evaluations``: label -> evaluate_run's
    records; None: read from each finished run's evaluation.json), or, with nothing to
    compare, each head's test accuracy over the seeds."""
    from globalpool.analysis.evaluation import evaluate_run
    from globalpool.analysis.report.claims import claims_text
    from globalpool.experiment.runs import run_dir

    if evaluations is None:
        evaluations = {}
        for spec in specs:
            dirs = [run_dir(out, spec.label, k) for k in seeds]
            if all((d / "summary.json").is_file() for d in dirs):
                evaluations[spec.label] = [evaluate_run(d) for d in dirs]
    if not evaluations:
        return
    text = claims_text(evaluations)
    print()
    if text is not None:
        print(f"The claims, tested over seeds {', '.join(map(str, seeds))} "
              "(Welch's t, p < 0.05):")  # fmt: skip
        print(text)
        return
    from globalpool.analysis.stats import mean_sd

    print(f"Test accuracy over seeds {', '.join(map(str, seeds))} (no claim to test "
          "with these heads):")  # fmt: skip
    for label, records in evaluations.items():
        mean, sd = mean_sd([100 * r["test_acc"] for r in records])
        print(f"  {label}: {mean:.1f} ± {sd:.1f}%")
