"""``compare``: one backbone, several heads, identical data, seed, budget and optimiser.

Every head is trained with :func:`globalpool.train.train` from the same base
:class:`~globalpool.train.TrainConfig` (only ``head``, ``pool``, ``head_kwargs``,
``pool_kwargs``, ``seed`` and ``out_dir`` change), into ``out_dir/<label>/seed<k>``; then
the report (``report.html``, ``report.md``) is written into ``out_dir``.

Runs are planned, trained and reused by :mod:`globalpool.experiment.runs`: a finished run
whose saved configuration equals the one it would get now is not trained again, so an
interrupted comparison can simply be started again with the same command.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from globalpool.experiment.heads import HeadSpec, parse_heads
from globalpool.experiment.runs import Job, run_or_reuse
from globalpool.train.presets import MAIN_JOB

__all__ = [
    "COMPARE_DEFAULTS", "COMPARE_SEEDS", "compare", "default_compare_config", "head_config",
]  # fmt: skip

# A plain ``globalpool compare`` trains every head with these seeds: on 500 training
# images one seed's ranking of the heads is an anecdote; the report's "Over seeds"
# section says whether the spread separates them.
COMPARE_SEEDS = (0, 1, 2)

# The settings of a plain ``globalpool compare``: the main job's preset (its choice is
# explained where it is defined, globalpool.train.presets.MAIN_JOB).
COMPARE_DEFAULTS: dict[str, Any] = MAIN_JOB.settings


def default_compare_config():
    """The base :class:`~globalpool.train.TrainConfig` of a plain ``globalpool compare``."""
    return MAIN_JOB.config()


def head_config(base_config, spec: HeadSpec, out_dir: str | os.PathLike):
    """``base_config`` with ``spec``'s head, pool and arguments, writing to
    ``out_dir/<label>``. The base's own ``head_kwargs``/``pool_kwargs`` are kept under
    the spec's (the spec wins on a clash)."""
    head_kwargs = {k: v for k, v in spec.kwargs.items() if k != "pool_kwargs"}
    pool_kwargs = dict(spec.kwargs.get("pool_kwargs") or {})
    return base_config.replace(
        head=spec.kind,
        pool=spec.pool,
        head_kwargs={**base_config.head_kwargs, **head_kwargs},
        pool_kwargs={**base_config.pool_kwargs, **pool_kwargs} if spec.pool else {},
        out_dir=str(Path(out_dir) / spec.label),
    ).validate()


def compare(
    base_config,
    heads: Sequence[HeadSpec | str] | str | None,
    out_dir: str | os.PathLike,
    *,
    command: str | None = None,
    overwrite: bool = False,
    report: bool = True,
    seeds: Sequence[int] | None = None,
    cam_methods: Sequence[str] = (),
    log: Callable[[str], None] | None = print,
) -> list[dict]:
    """Train one model per head under identical settings, then write the report.

    Args:
        base_config: a :class:`~globalpool.train.TrainConfig`; its ``head``, ``pool`` and
            ``out_dir`` are replaced per head.
        heads: :class:`HeadSpec` objects or spec strings (``"classmap:max"``), or one
            comma-separated string; None gives ``DEFAULT_HEADS``.
        out_dir: comparison directory; head ``label`` trains in ``out_dir/label``.
        command: the command line, recorded in ``compare.json`` and the report.
        overwrite: train every run again, replacing what its directory holds; without
            it a finished run with the same settings is reused and one with other
            settings refused (:func:`globalpool.experiment.runs.run_or_reuse`).
        report: write ``report.html`` / ``report.md`` when all heads are trained.
        seeds: train every head once per seed, in ``out_dir/label/seed<k>``
            (:func:`globalpool.experiment.runs.run_dir`); with several, the report adds its
            "Over seeds" section. None: the base config's seed alone.
        cam_methods: CAM methods to score on every head in the report (methods x heads
            localization table; see :func:`globalpool.analysis.report.write_report`).
        log: where progress lines go (None: silent).

    Returns:
        the summaries (as in ``summary.json``), one per head and seed, in ``heads`` order
        (seeds inner).

    Raises:
        ValueError: bad head specs or settings.
        TrainingDiverged: after the report, when some head's loss became NaN/infinite
            (the other heads are trained and reported; the report names the failed ones).

    Example:
        >>> from globalpool.train import TrainConfig
        >>> cfg = TrainConfig(dataset="shapes", epochs=1,
        ...                   dataset_kwargs={"n_train": 200, "n_test": 100})
        >>> summaries = compare(cfg, "fc,classmap:avg", "runs/tiny")  # doctest: +SKIP
        >>> [s["head"] for s in summaries]  # doctest: +SKIP
        ['fc', 'classmap']
    """
    from globalpool.train import TrainingDiverged

    specs = parse_heads(heads)
    base_config = base_config.validate()
    out = Path(out_dir)
    seeds = [base_config.seed] if seeds is None else [int(k) for k in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    jobs = _plan_jobs(base_config, specs, out, seeds)
    out.mkdir(parents=True, exist_ok=True)
    _write_plan(out, base_config, specs, command=command, seeds=seeds)

    say = log or (lambda _msg: None)
    done = _run_jobs(jobs, overwrite=overwrite, say=say)
    if report and done.first_run:
        from globalpool.analysis.report import write_report

        paths = write_report(
            out,
            list(done.first_run.values()),
            labels=list(done.first_run),
            command=command,
            notes=done.failures,
            seed_runs=done.by_head if len(seeds) > 1 else None,
            cam_methods=cam_methods,
            evaluations=done.evaluations,
        )
        say(f"report: {paths['html']} and {paths['markdown']}")
    if done.failures:
        raise TrainingDiverged("; ".join(done.failures))
    return done.summaries


def _plan_jobs(
    base_config, specs: Sequence[HeadSpec], out: Path, seeds: Sequence[int]
) -> list[tuple[HeadSpec, Job]]:
    """The ``(spec, job)`` of every run, heads outer, seeds inner, in ``out/<label>/seed<k>``."""
    return [
        (spec, Job.plan(out, spec.label, k, head_config(base_config, spec, out)))
        for spec in specs
        for k in seeds
    ]


def _write_plan(
    out: Path, base_config, specs: Sequence[HeadSpec], *, command: str | None,
    seeds: Sequence[int],
) -> None:  # fmt: skip
    """``out/compare.json``: the command, the heads, the base config and the seeds."""
    from globalpool.atomic import atomic_write_text

    plan = {
        "command": command,
        "heads": [
            {
                "label": s.label,
                "spec": s.to_text(),
                "kind": s.kind,
                "pool": s.pool,
                "kwargs": s.kwargs,
            }
            for s in specs
        ],
        "base_config": base_config.to_dict(),
        "seeds": [int(k) for k in seeds],
    }
    atomic_write_text(out / "compare.json", json.dumps(plan, indent=2) + "\n")


@dataclass
class _CompareRuns:
    """What :func:`_run_jobs` trained (or reused)."""

    summaries: list[dict] = field(default_factory=list)  # in job order
    failures: list[str] = field(default_factory=list)  # one line per diverged run
    by_head: dict[str, list[dict]] = field(default_factory=dict)  # label -> its summaries
    first_run: dict[str, Path] = field(default_factory=dict)  # label -> its first run dir
    evaluations: dict[str, list[dict]] = field(default_factory=dict)  # label -> evaluate_run's


def _run_jobs(
    jobs: list[tuple[HeadSpec, Job]], *, overwrite: bool, say: Callable[[str], None]
) -> _CompareRuns:
    """Train (or reuse, by :func:`run_or_reuse`) every job in turn; a run that diverges
    is recorded in ``failures`` and the others go on."""
    from globalpool.analysis.evaluation import describe_evaluation, evaluate_run
    from globalpool.train import TrainingDiverged

    done = _CompareRuns()
    start = time.perf_counter()
    for i, (spec, job) in enumerate(jobs, start=1):
        what = f"[{i}/{len(jobs)}] {spec.label} seed {job.seed}"
        try:
            summary, _ = run_or_reuse(job, overwrite=overwrite, say=say, what=what)
        except TrainingDiverged as err:
            # A head that diverges under the shared settings is itself a result:
            # record it and go on with the others.
            say(f"{what}: diverged: {err}")
            done.failures.append(f"{spec.label} (seed {job.seed}) diverged and is left out: {err}")
            continue
        if "test_acc" not in summary:  # stop_after_epoch cut the run short
            raise ValueError(
                f"head {spec.label} stopped early ({summary}); compare needs finished runs"
            )
        record = evaluate_run(job.path)
        say(f"{what}: {describe_evaluation(record)}")
        done.evaluations.setdefault(spec.label, []).append(record)
        done.summaries.append(summary)
        done.by_head.setdefault(spec.label, []).append(summary)
        done.first_run.setdefault(spec.label, job.path)
    say(f"trained {len(jobs)} runs in {time.perf_counter() - start:.0f} s")
    return done
