"""``globalpool reproduce``: rerun a published global-pooling claim beside its figure.

Example:
    globalpool reproduce --list
    globalpool reproduce article-fmnist --data ../shared/data/fashion-mnist --seeds 0 1 2
    globalpool reproduce nin-heads-cifar10 --data ../shared/data/cifar-10-python.tar.gz
    globalpool reproduce cam-localization --seeds 0 1 2 --out runs/cam-loc
    globalpool reproduce article-fmnist --quick --data ../shared/data/fashion-mnist
    globalpool reproduce overfitting-vs-data-vgg --seeds 0 1 \
        --data ../shared/data/cifar-10-python.tar.gz \
        --reuse-record benchmarks/results/reproduce/overfitting-vs-data-vgg.json

OUT (default ``runs/reproduce/<name>``) gets one run directory per row, size and seed,
``reproduce.md`` (published | ours, mean ± sd over seeds, min-max, time), ``reproduce.png``
and ``reproduce.json``. Finished runs are reused, so seeds can be added later.
"""

from __future__ import annotations

import argparse

from globalpool.cli.options import Range, add_range_option
from globalpool.experiment.runs import OVERWRITE_HELP

DEFAULT_RECORDS = "benchmarks/results/reproduce"


def register(subparsers) -> None:
    from globalpool.cli.cmd_train import add_threads_flag

    parser = subparsers.add_parser(
        "reproduce",
        help="rerun a published global-pooling claim beside its published figure",
        description="Rerun one published claim (globalpool reproduce --list) over seeds and "
        "write OUT/reproduce.md, reproduce.json and reproduce.png.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", help="the claim (see --list)")
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the claims, each with its recorded results (see --records), and stop",
    )
    parser.add_argument(
        "--records",
        metavar="DIR",
        default=DEFAULT_RECORDS,
        help="with --list: the reproduce.json records to show (each claim's protocol, seeds "
        f"and verdicts); default: {DEFAULT_RECORDS} where it exists (a checkout)",
    )
    add_range_option(
        parser, "--seeds", allowed=Range(int, 0), nargs="+", default=[0], help="one run per seed"
    )
    parser.add_argument(
        "--protocol",
        help="full: the published schedule; cpu, cpu-fit: stated CPU-sized ones, where the "
        "claim has them (default: the claim's; --list names each claim's protocols)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a seconds-long smoke test of the whole path"
    )
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="the data set's location: a Fashion-MNIST idx folder, a CIFAR-10 archive or "
        "folder (default: the cache folder; the built-in shapes need none)",
    )
    parser.add_argument("--out", metavar="DIR", help="output (default: runs/reproduce/NAME)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train")
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    parser.add_argument(
        "--reuse-record",
        metavar="FILE",
        help="an earlier reproduce.json of this claim: its runs with the same settings keep "
        "their recorded scores and are not trained again, so a long protocol runs in pieces "
        "(a seed at a time) and the new record holds them all",
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        metavar="ROW",
        help="train only these rows (labels as --list shows them, e.g. 'NIN + GAP'); the "
        "others' runs come from --reuse-record where it holds them, else they are left out "
        "(a protocol in pieces of one head each)",
    )
    add_threads_flag(parser)
    parser.set_defaults(func=run)


def _records(folder: str) -> list[dict]:
    """The reproduce.json records (any file name) in ``folder``; none when it is absent."""
    import json
    from pathlib import Path

    path = Path(folder)
    if not path.is_dir():
        return []
    records = []
    for file in sorted(path.glob("*.json")):
        record = json.loads(file.read_text(encoding="utf-8"))
        if isinstance(record, dict) and "runs" in record and "name" in record:
            records.append({**record, "file": str(file)})
    return records


def _list(records_dir: str) -> None:
    from globalpool.experiment.claims import CLAIMS
    from globalpool.experiment.reproduce import METRIC_NAMES, claim_verdicts, score_name

    records = _records(records_dir)

    for claim in CLAIMS.values():
        print(f"{claim.name}: {claim.title}")
        print(f"  source: {claim.source}")
        print(f"  claim: {claim.claim}")
        published = ", ".join(
            f"{row} {'none' if v is None else f'{v:.2f}'}" for row, v in claim.published.items()
        )
        print(f"  published {METRIC_NAMES[claim.metric]}: {published}")
        print(f"  protocols: {', '.join(claim.settings)} (default {claim.default_protocol})")
        for record in (r for r in records if r["name"] == claim.name):
            seeds = " ".join(map(str, record["seeds"]))
            print(f"  recorded: {record['file']}: protocol {record['protocol']}, seeds {seeds}")
            for v in claim_verdicts(claim, record["runs"]):
                size = "" if v["size"] is None else f" at {v['size']:,} images"
                tested = v["p"] is not None and v["verdict"] != "heads not trained"
                p = f", p = {v['p']:.2g}" if tested else ""
                what = score_name(v, claim.metric)
                print(f"    {v['better']} better than {v['worse']} on {what}{size}: "
                      f"{v['verdict']}{p}")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from globalpool.experiment.claims import get_claim
    from globalpool.experiment.reproduce import reproduce

    if args.list:
        _list(args.records)
        return 0
    if not args.name:
        raise ValueError("name a claim to reproduce (see globalpool reproduce --list)")
    claim = get_claim(args.name)
    reproduce(
        claim,
        seeds=args.seeds,
        rows=args.rows,
        protocol=args.protocol,
        quick=args.quick,
        data=args.data,
        out_dir=args.out or f"runs/reproduce/{claim.name}",
        overrides={"device": args.device} if args.device else None,
        overwrite=args.overwrite,
        reuse=args.reuse_record,
        command=args.command_line,
    )
    return 0
