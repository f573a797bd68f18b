"""``reproduce``: rerun one published claim (see :mod:`globalpool.experiment.claims`).

Every row of the claim (one head each), every training-set size of a size sweep and every
seed is one ordinary training run in ``out_dir/<row>/[n<size>/]seed<k>/``; a run that
finished with the same settings is reused, so seeds can be added later. Afterwards each
run's final weights are scored again in eval mode on its own training images (the
train-test gap without dropout or augmentation) and, for the localization claim, on the
test boxes at every map threshold. A protocol too long for one sitting runs in pieces (a
seed at a time): ``reuse`` names an earlier ``reproduce.json`` whose runs with the same
settings (each run keeps its full config) are taken as they are, not trained again, so
the record grows by the runs asked for; ``rows`` trains only some rows (a head at a time)
and keeps the others' recorded runs. Then ``out_dir`` gets:

- ``reproduce.json``: the claim, the protocol, every run and per row (and size) the mean,
  standard deviation, min and max over seeds;
- ``reproduce.md``: the side-by-side table (published | ours), with the command;
- ``reproduce.png``: ours against the published figure (or, for a size sweep, test
  accuracy and gap against training-set size).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from globalpool.analysis.evaluation import accuracy, localization_sweep
from globalpool.analysis.markup import markdown_table as markdown_table_of
from globalpool.analysis.render import new_figure, save_figure
from globalpool.analysis.report import environment_info
from globalpool.analysis.stats import ALPHA, describe, verdict
from globalpool.atomic import atomic_write_text
from globalpool.data import load_dataset, train_val_split
from globalpool.deploy import load
from globalpool.experiment.claims import Claim, get_claim
from globalpool.experiment.heads import parse_head
from globalpool.experiment.runs import Job, differing_settings, run_dir, run_or_reuse
from globalpool.train import TrainConfig

__all__ = ["pick_rows", "plan_runs", "read_record", "reproduce"]


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")


def plan_runs(
    claim: Claim,
    *,
    seeds: Sequence[int],
    protocol: str | None = None,
    quick: bool = False,
    data: str | None = None,
    out_dir: str | os.PathLike = "runs/reproduce",
    overrides: dict[str, Any] | None = None,
) -> list[dict]:
    """The training runs of ``claim``: one dict per (row, size, seed) with its config.

    Args:
        seeds: one run per seed and row (and size).
        protocol: ``full``, ``cpu`` (where the claim has one), None = its default.
        quick: shrink to seconds (tests), whatever the protocol.
        data: the dataset's ``path`` (Fashion-MNIST folder, CIFAR-10 archive or folder).
        overrides: TrainConfig fields applied last (``device``, ``amp``...).
    """

    protocol = protocol or claim.default_protocol
    if protocol not in claim.settings:
        raise ValueError(
            f"{claim.name} has the protocol(s) {', '.join(claim.settings)}; got {protocol!r}"
        )
    if not seeds:
        raise ValueError("reproduce needs at least one seed")
    settings = dict(claim.settings[protocol].settings)
    dataset_kwargs = dict(settings.pop("dataset_kwargs", {}))
    if quick:
        quick_kwargs = dict(claim.quick)
        dataset_kwargs.update(quick_kwargs.pop("dataset_kwargs", {}))
        settings.update(quick_kwargs)
    if data is not None:
        dataset_kwargs["path"] = str(data)
    sizes_key = "quick" if quick else protocol
    sizes: tuple[int | None, ...] = claim.train_sizes.get(sizes_key, ()) or (None,)
    runs = []
    for label, head_text in claim.rows.items():
        spec = parse_head(head_text)
        head_kwargs = {k: v for k, v in spec.kwargs.items() if k != "pool_kwargs"}
        for size in sizes:
            for seed in seeds:
                kwargs = dict(dataset_kwargs)
                fields = dict(settings)
                where = Path(out_dir) / _slug(label)
                if size is not None:
                    kwargs.update(train_subset=int(size), subset_seed=int(seed))
                    # The subset is the training split before the validation hold-out.
                    seen = claim.images_per_run[sizes_key]
                    fields["epochs"] = max(1, math.ceil(seen / size))
                    where = where / f"n{size}"
                config = TrainConfig(
                    **{
                        **fields,
                        "head": spec.kind,
                        "pool": spec.pool,
                        "head_kwargs": head_kwargs,
                        "dataset_kwargs": kwargs,
                        "seed": int(seed),
                        "out_dir": str(run_dir(where, "", seed)),
                        **(overrides or {}),
                    }
                ).validate()
                runs.append({"row": label, "size": size, "seed": int(seed), "config": config})
    return runs


class _DataCache:
    """Datasets by their load arguments, so a sweep decodes each source once."""

    def __init__(self) -> None:
        self._sets: dict[str, Any] = {}

    def get(self, config):

        key = json.dumps([config.dataset, config.dataset_kwargs], sort_keys=True)
        if key not in self._sets:
            self._sets[key] = load_dataset(config.dataset, **config.dataset_kwargs)
        return self._sets[key]


def _score_run(claim: Claim, run: dict, summary: dict, data_cache: _DataCache, cpu: str) -> dict:
    """The numbers of one finished run: test accuracy, train accuracy in eval mode, gap,
    time, the CPU and the run's full config; localization scores for the localization
    claim."""

    config = run["config"]
    data = data_cache.get(config)
    model = load(config.out_dir, which="last")
    train_split, _ = train_val_split(data.train, config.val_fraction, config.seed)
    train_acc = accuracy(model, train_split, model.mean, model.std)
    record = {
        "row": run["row"],
        "size": run["size"],
        "seed": run["seed"],
        "run_dir": config.out_dir,
        "test_acc": summary["test_acc"],
        "train_acc": train_acc,
        "gap": train_acc - summary["test_acc"],
        "train_images": len(train_split),
        "epochs": summary["epochs"],
        "wall_time_s": summary["wall_time_s"],
        "images_per_s": summary["images_per_s"],
        "device": summary["device"],
        "params_total": summary["params_total"],
        "cpu": cpu,
        "config": json.loads(config.to_json()),
    }
    if claim.metric == "max_box_acc":
        loc = localization_sweep(model, data.test, model.mean, model.std)
        loc.pop("n_images")
        record.update(loc)
    return record


def _value(claim: Claim, record: dict) -> float:
    """The claim's metric of one run, in percent."""
    if claim.metric == "test_error":
        return 100 * (1 - record["test_acc"])
    if claim.metric == "max_box_acc":
        return 100 * record["max_box_acc"]
    return 100 * record["test_acc"]


def _aggregate(claim: Claim, records: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["row"], r["size"]), []).append(r)
    out = []
    for (row, size), rs in groups.items():
        entry = {
            "row": row,
            "size": size,
            "published": claim.published.get(row),
            "ours": describe([_value(claim, r) for r in rs]),
            "test_acc": describe([100 * r["test_acc"] for r in rs]),
            "train_acc": describe([100 * r["train_acc"] for r in rs]),
            "gap": describe([100 * r["gap"] for r in rs]),
            "wall_time_s": describe([r["wall_time_s"] for r in rs]),
            "params_total": rs[0]["params_total"],
            "seeds": [r["seed"] for r in rs],
        }
        if claim.metric == "max_box_acc":
            for key in ("max_box_acc_v2", "pxap", "box_acc_at_0.2", "pointing_acc", "mask_iou"):
                # records written before MaxBoxAccV2 / PxAP existed have none: n/a
                entry[key] = describe([None if r.get(key) is None else 100 * r[key] for r in rs])
            entry["method"] = rs[0]["method"]
        out.append(entry)
    return out


# For a claim that needs fitted heads (Claim.needs_fit), a head counts as trained when
# every seed's final weights classify at least this share of their own training images
# (eval mode); below it a comparison measures what each head failed to learn, so it gets
# no verdict. Other claims are decided under their protocol whatever the heads fit.
TRAINED = 0.99

VERDICT_WORDS = {"holds": "reproduced", "reversed": "reversed",
                 "not separated": "not separated", "untested": "untested"}  # fmt: skip


def claim_verdicts(claim: Claim, records: list[dict]) -> list[dict]:
    """One verdict per claimed ordering (and training-set size): the one rule of
    :func:`globalpool.analysis.stats.verdict` (Welch's t over seeds) on the runs' scores.

    ``reproduced`` where the claimed ordering holds and the test separates it,
    ``reversed`` where the test separates the opposite, ``not separated`` otherwise, and,
    for a claim that needs fitted heads (:attr:`Claim.needs_fit`), ``heads not trained``
    (no test) where a run of either row fits less than :data:`TRAINED` of its training
    images.

    Returns:
        one dict per ordering and size: ``better``, ``worse``, ``score``, ``size``,
        ``diff`` (mean better - mean worse, in points), ``t``, ``p``, ``verdict``,
        ``min_train_acc`` (percent, the lowest over both rows' runs).
    """
    out = []
    sizes = list(dict.fromkeys(r["size"] for r in records))
    for better, worse, score in claim.claimed_orderings():
        for size in sizes:
            runs = {row: sorted((r for r in records if r["row"] == row and r["size"] == size),
                                key=lambda r: r["seed"]) for row in (better, worse)}  # fmt: skip
            if not runs[better] or not runs[worse]:
                continue

            a, b = (
                [100 * r["gap"] if score == "gap" else _value(claim, r) for r in runs[row]]
                for row in (better, worse)
            )
            # the claimed direction: a higher metric is better except for error and gap
            higher = not (score == "gap" or claim.metric == "test_error")
            result = verdict(a, b, higher)
            lowest = min(r["train_acc"] for rs in runs.values() for r in rs)
            fitted = lowest >= TRAINED or not claim.needs_fit
            word = VERDICT_WORDS[result["verdict"]] if fitted else "heads not trained"
            out.append({"better": better, "worse": worse, "score": score, "size": size,
                        **result, "verdict": word, "min_train_acc": 100 * lowest})  # fmt: skip
    return out


def read_record(path: str | os.PathLike, claim: Claim) -> dict:
    """The ``reproduce.json`` record at ``path``, checked to be one of ``claim``."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"expected an earlier reproduce.json to reuse, but {path} does not "
                         "exist") from None  # fmt: skip
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"expected a reproduce.json record at {path}: {err}") from None
    if not isinstance(record, dict) or not isinstance(record.get("runs"), list):
        raise ValueError(f"expected a reproduce.json record (with runs) at {path}")
    if record.get("name") != claim.name:
        raise ValueError(f"{path} records the claim {record.get('name')!r}, not {claim.name!r}")
    return record


def _recorded_run(record: dict, run: dict) -> dict | None:
    """The run of ``record`` with ``run``'s row, size, seed and settings, if any (records
    written before runs kept their config have none to match)."""
    key = (run["row"], run["size"], run["seed"])
    for old in record["runs"]:
        if (old["row"], old["size"], old["seed"]) != key or "config" not in old:
            continue
        if not differing_settings(old["config"], run["config"], ignore=("out_dir",)):
            return old
    return None


def record_line(result: dict) -> str:
    """One sentence naming how a record was measured (protocol, seeds, CPU, device and the
    summed training time), as BENCHMARKS.md and the guide print it above its table."""
    seeds = ", ".join(map(str, result["seeds"]))
    return (
        f"Protocol **{result['protocol']}**, seeds {seeds}; {result['cpu']}; "
        f"{result['device']}; {result['train_time_s'] / 60:.0f} min of training in all."
    )


def record_header(result: dict) -> str:
    """The commands that wrote a record (a bash block; several where it was run in pieces,
    each reusing the record before it) above its :func:`record_line`: how BENCHMARKS.md
    and the guide open a record's section."""
    commands = result.get("commands") or ([result["command"]] if result.get("command") else [])
    if not commands:  # a record written through the Python API: no command to show
        return record_line(result)
    pieces = "# in pieces: each command reuses the record the one before wrote\n"
    block = (pieces if len(commands) > 1 else "") + "\n".join(commands)
    return f"```bash\n{block}\n```\n\n{record_line(result)}"


def verdicts_text(result: dict) -> str:
    """:func:`verdicts_table` under one line stating the rule that gave the verdicts, as
    the guide's pages show a record's verdicts."""
    return (
        f"Verdicts (Welch's t over the seeds at p < {ALPHA}"
        + (f"; a head below {100 * TRAINED:.0f}% training accuracy in any seed gets none"
           if get_claim(result["name"]).needs_fit else "")
        + "):\n\n"
        f"{verdicts_table(result)}"
    )


def verdicts_table(result: dict) -> str:
    """The verdicts of a result (a ``reproduce.json`` record) as a Markdown table, as in
    ``reproduce.md``: recomputed from its runs by :func:`claim_verdicts`, so a record
    written before verdicts existed shows them too."""

    rows = []
    for v in claim_verdicts(get_claim(result["name"]), result["runs"]):
        what = score_name(v, result["metric"])
        untested = v["p"] is None or v["verdict"] == "heads not trained"
        p = "–" if untested else f"{v['p']:.2g}"
        size = "" if v["size"] is None else f"{v['size']:,}"
        ordering = f"{v['better']} better than {v['worse']}"
        rows.append([ordering, size, what, f"{v['diff']:+.2f}", p,
                     f"{v['min_train_acc']:.1f}", v["verdict"]])  # fmt: skip
    header = ["claimed ordering", "train images", "score", "difference, points",
              "Welch's p", "lowest train acc %", "verdict"]  # fmt: skip
    if not any(r[1] for r in rows):
        header.pop(1)
        rows = [r[:1] + r[2:] for r in rows]
    return markdown_table_of(header, rows, text_cols=1)


METRIC_NAMES = {
    "test_acc": "test accuracy (%)",
    "test_error": "test error (%)",
    "max_box_acc": "MaxBoxAcc (%)",
}


def score_name(verdict: dict, metric: str) -> str:
    """What a verdict of :func:`claim_verdicts` compares: the train - test gap or the
    claim's metric (``metric`` as in ``Claim.metric``), named for a reader."""
    return "train - test gap" if verdict["score"] == "gap" else METRIC_NAMES[metric]


def _ms(s: dict, digits: int = 2) -> str:
    if s["mean"] is None:
        return "n/a"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _range(s: dict, digits: int = 2) -> str:
    return "n/a" if s["mean"] is None else f"{s['min']:.{digits}f}-{s['max']:.{digits}f}"


def markdown_table(result: dict) -> str:
    """The side-by-side table of a result (as in ``reproduce.md``), without headings."""
    claim_metric = result["metric"]
    metric = METRIC_NAMES[claim_metric]
    sweep = any(e["size"] is not None for e in result["rows"])
    cols = ["row", *(["train images"] if sweep else []), f"published {metric}",
            f"ours {metric}, mean ± sd", "min-max", "train acc (eval) %",
            "gap (train - test), points", "time per run (s)", "seeds"]  # fmt: skip
    if claim_metric == "max_box_acc":
        # records scored before 2026-12-08 (globalpool's pixel-edge convention) have no PxAP
        scored_as_reference = any("pxap" in e for e in result["rows"])
        cols[5:5] = ["MaxBoxAccV2 %", *(["PxAP %"] if scored_as_reference else []),
                     "box acc @0.2 %", "pointing %", "mask IoU %", "map"]  # fmt: skip
    rows = []
    for e in result["rows"]:
        published = "none published" if e["published"] is None else f"{e['published']:.2f}"
        cells = [e["row"], *([f"{e['size']:,}"] if sweep else []), published,
                 _ms(e["ours"]), _range(e["ours"]), _ms(e["train_acc"]), _ms(e["gap"]),
                 f"{e['wall_time_s']['mean']:.0f}", str(len(e["seeds"]))]  # fmt: skip
        if claim_metric == "max_box_acc":
            none = {"mean": None}
            pxap = [_ms(e.get("pxap", none))] if scored_as_reference else []
            cells[5:5] = [_ms(e.get("max_box_acc_v2", none)), *pxap, _ms(e["box_acc_at_0.2"]),
                          _ms(e["pointing_acc"]), _ms(e["mask_iou"]), e["method"]]  # fmt: skip
        rows.append(cells)
    return markdown_table_of(cols, rows, text_cols=1)


def _markdown(result: dict) -> str:
    lines = [
        f"# {result['title']}",
        "",
        f"Claim ({result['source']}): {result['claim']}",
        "",
        record_header(result),
        "",
        *(["A quick run: a seconds-long smoke test, not a result.", ""] if result["quick"] else []),
        markdown_table(result),
        "",
        verdicts_text(result),
        "",
        f"Published figures: {result['published_note']}.",
        "",
        "As published: "
        + "; ".join(f"{k}: {v}" for k, v in result["protocol_published"].items())
        + ".",
        "",
        "Left unstated by the source, chosen here: "
        + "; ".join(f"{k}: {v}" for k, v in result["choices"].items())
        + ".",
        "",
        "![ours beside the published figure](reproduce.png)",
        "",
    ]
    return "\n".join(lines)


def _figure(result: dict):

    rows = result["rows"]
    metric = METRIC_NAMES[result["metric"]]
    labels = list(dict.fromkeys(e["row"] for e in rows))
    if any(e["size"] is not None for e in rows):
        fig = new_figure(10.0, 4.0)
        ax_acc, ax_gap = fig.subplots(1, 2)
        for i, label in enumerate(labels):
            es = sorted((e for e in rows if e["row"] == label), key=lambda e: e["size"])
            x = [e["size"] for e in es]
            for ax, key in ((ax_acc, "test_acc"), (ax_gap, "gap")):
                ax.errorbar(x, [e[key]["mean"] for e in es], yerr=[e[key]["std"] for e in es],
                            fmt="-o", ms=4, capsize=3, color=f"C{i}", label=label)  # fmt: skip
        for ax, title in ((ax_acc, "test accuracy (%)"), (ax_gap, "train - test (points)")):
            ax.set_xscale("log")
            ax.set_xlabel("training images")
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
        ax_acc.legend(fontsize=8)
        return fig
    fig = new_figure(7.0, 3.6)
    ax = fig.subplots()
    ys = range(len(labels))
    published_labelled = False
    for y, label in zip(ys, labels, strict=True):
        e = next(e for e in rows if e["row"] == label)
        ours = e["ours"]
        ax.errorbar([ours["mean"]], [y], xerr=[[ours["mean"] - ours["min"]],
                    [ours["max"] - ours["mean"]]], fmt="o", color="C0", capsize=4,
                    label="ours (mean, min-max over seeds)" if y == 0 else None)  # fmt: skip
        if e["published"] is not None:
            ax.plot([e["published"]], [y], "D", color="C3",
                    label=None if published_labelled else "published")  # fmt: skip
            published_labelled = True
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8)
    return fig


def pick_rows(claim: Claim, rows: Sequence[str] | None) -> list[str] | None:
    """The row labels of ``claim`` that ``rows`` names (case-insensitive), in the claim's
    order; None for all of them."""
    if rows is None:
        return None
    labels = {label.lower(): label for label in claim.rows}
    unknown = [r for r in rows if r.lower() not in labels]
    if unknown or not rows:
        raise ValueError(f"expected row(s) of {claim.name} ({', '.join(map(repr, claim.rows))}); "
                         f"got {', '.join(map(repr, unknown)) or 'none'}")  # fmt: skip
    picked = {labels[r.lower()] for r in rows}
    return [label for label in claim.rows if label in picked]


def reproduce(
    claim: Claim,
    *,
    seeds: Sequence[int] = (0,),
    rows: Sequence[str] | None = None,
    protocol: str | None = None,
    quick: bool = False,
    data: str | None = None,
    out_dir: str | os.PathLike = "runs/reproduce",
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    reuse: str | os.PathLike | None = None,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every training run of ``claim`` (see :func:`plan_runs`), then write
    ``reproduce.json``, ``reproduce.md`` and ``reproduce.png`` into ``out_dir``.

    ``reuse``: an earlier ``reproduce.json`` of this claim; each planned run that it holds
    with the same settings (row, size, seed and every TrainConfig field but ``out_dir``)
    keeps its recorded scores instead of training again.

    ``rows``: train only these rows (labels of ``claim.rows``); the other rows' runs come
    from ``reuse`` where it holds them, else they are left out of the record.

    Returns:
        the dict written to ``reproduce.json``.
    """

    runs = plan_runs(claim, seeds=seeds, protocol=protocol, quick=quick, data=data,
                     out_dir=out_dir, overrides=overrides)  # fmt: skip
    protocol = protocol or claim.default_protocol
    wanted = pick_rows(claim, rows)
    earlier = read_record(reuse, claim) if reuse is not None else None
    started = time.perf_counter()
    data_cache = _DataCache()
    env = environment_info()
    records, device = [], None
    for i, run in enumerate(runs, 1):
        config = run["config"]
        what = f"{claim.name} [{i}/{len(runs)}] {run['row']}" + (
            f", {run['size']:,} images" if run["size"] is not None else ""
        ) + f", seed {run['seed']}"  # fmt: skip
        record = _recorded_run(earlier, run) if earlier is not None else None
        if record is None and wanted is not None and run["row"] not in wanted:
            log(f"{what}: not among --rows and not recorded: left out")
            continue
        if record is not None:
            log(f"{what}: recorded in {reuse} with these settings, reusing its scores")
        else:
            job = Job(run["row"], int(run["seed"]), config)  # its out_dir: plan_runs' seed<k>
            summary, _ = run_or_reuse(job, overwrite=overwrite, say=log, what=what)
            record = _score_run(claim, run, summary, data_cache, env.get("cpu", ""))
        device = record["device"]
        records.append(record)
        log(f"{what}: test {100 * record['test_acc']:.2f}%, train (eval) "
            f"{100 * record['train_acc']:.2f}%, {record['wall_time_s']:.0f} s")  # fmt: skip
    commands = [*(earlier.get("commands") or [earlier.get("command")])] if earlier else []
    result = {
        "name": claim.name,
        "title": claim.title,
        "source": claim.source,
        "claim": claim.claim,
        "metric": claim.metric,
        "published_note": claim.published_note,
        "protocol": protocol,
        "protocol_published": claim.protocol,
        "choices": claim.choices,
        "quick": quick,
        "settings": runs[0]["config"].to_dict(),
        "seeds": [int(s) for s in seeds],
        "command": command,
        # every command that trained some of the runs, oldest first (pieces)
        "commands": [c for c in dict.fromkeys([*commands, command]) if c],
        "device": device,
        # the CPUs the runs trained on (pieces may have run on different machines)
        "cpu": "; ".join(dict.fromkeys(r.get("cpu") or env.get("cpu", "") for r in records)),
        # the runs' own wall times, summed: reused runs count what they took when trained
        "train_time_s": sum(r["wall_time_s"] for r in records),
        "wall_time_s": time.perf_counter() - started,
        "runs": records,
        "rows": _aggregate(claim, records),
        "verdicts": claim_verdicts(claim, records),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(_figure(result), out / "reproduce.png")
    atomic_write_text(out / "reproduce.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / "reproduce.md", _markdown(result))
    log(f"{claim.name}: {len(records)} run(s), {result['train_time_s'] / 60:.1f} min of "
        f"training in all\n"
        + markdown_table(result) + "\n\n" + verdicts_table(result)
        + f"\n{out}/reproduce.md")  # fmt: skip
    return result
