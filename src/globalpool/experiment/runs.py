"""The one run layer of compare, speedrun and reproduce: where a job's run lives, and
whether it is trained, reused or refused.

A job is one training (a label, a seed and its :class:`~globalpool.train.TrainConfig`); it
lives in ``<out>/<label>/seed<k>`` (``<out>/seed<k>`` without a label), whatever the
number of seeds, so a plan read back later finds its runs. :func:`run_or_reuse` applies
the one overwrite policy:

- without ``overwrite``: a finished run with the job's settings (up to cosmetic flags) is
  reused; a finished run with other settings is refused, naming the fields that differ;
  an empty or missing directory is trained;
- with ``overwrite``: the job is trained again, replacing what the directory held.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "COSMETIC", "OVERWRITE_HELP", "Job", "differing_fields", "differing_settings",
    "finished_with", "run_dir", "run_or_reuse",
]  # fmt: skip

# The policy in the words of every verb's --overwrite help (compare, speedrun, reproduce).
OVERWRITE_HELP = (
    "train every run again, replacing what its directory holds (without it, a finished run "
    "with the same settings is reused and one with other settings refused)"
)
# Settings that do not change what a run computes.
COSMETIC = ("quiet", "tensorboard")


def run_dir(out: str | Path, label: str, seed: int) -> Path:
    """``out/label/seed<k>`` (``out/seed<k>`` for an empty label): the one layout."""
    base = Path(out) / label if label else Path(out)
    return base / f"seed{int(seed)}"


@dataclass(frozen=True)
class Job:
    """One training of an experiment: ``config.out_dir`` is its :func:`run_dir`."""

    label: str
    seed: int
    config: Any  # a TrainConfig

    @classmethod
    def plan(cls, out: str | Path, label: str, seed: int, config) -> Job:
        """The job of ``config`` for ``label`` and ``seed`` under ``out``."""
        where = run_dir(out, label, seed)
        return cls(label, int(seed), config.replace(seed=int(seed), out_dir=str(where)))

    @property
    def path(self) -> Path:
        return Path(self.config.out_dir)


def _comparable(saved: dict, defaults: dict) -> dict:
    """``saved`` (a config's JSON dict) with ``defaults`` filled in for fields added to
    TrainConfig after it was written (the run had the behaviour of their defaults) and
    cosmetic flags dropped."""
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    return {k: v for k, v in saved.items() if k not in COSMETIC}


def _saved_settings(path: Path, config) -> dict | None:
    """The finished run's settings at ``path`` (None when there is none)."""
    summary, saved = path / "summary.json", path / "config.json"
    if not (summary.is_file() and saved.is_file()):
        return None
    try:
        return json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def differing_settings(saved: dict, config, ignore: tuple[str, ...] = ()) -> list[str]:
    """The fields in which ``saved`` (a config's JSON dict, as in a run's config.json)
    differs from ``config``, up to cosmetic flags and the fields in ``ignore``."""
    defaults = json.loads(type(config)().to_json())
    old = _comparable(saved, defaults)
    new = _comparable(json.loads(config.to_json()), defaults)
    keys = (old.keys() | new.keys()) - set(ignore)
    return sorted(k for k in keys if old.get(k) != new.get(k))


def differing_fields(path: str | Path, config) -> list[str] | None:
    """The settings in which the finished run at ``path`` differs from ``config``: None
    when ``path`` holds no finished run, [] when it is a run of ``config``."""
    saved = _saved_settings(Path(path), config)
    return None if saved is None else differing_settings(saved, config)


def finished_with(path: str | Path, config) -> bool:
    """True when ``path`` holds a finished run of ``config`` (up to cosmetic flags)."""
    return differing_fields(path, config) == []


def run_or_reuse(
    job: Job, *, overwrite: bool = False, say: Callable[[str], None] = lambda _m: None,
    what: str | None = None,
) -> tuple[dict, bool]:  # fmt: skip
    """Train ``job``, or reuse its finished run, by the module's overwrite policy.

    Returns:
        ``(summary, reused)``: the run's ``summary.json`` and whether it was reused.

    Raises:
        ValueError: without ``overwrite``, the directory holds a finished run with other
            settings (the message names them).
        TrainingDiverged: the training diverged.
    """
    from globalpool.train import train

    what = what or f"{job.label or 'run'} seed {job.seed}"
    differ = None if overwrite else differing_fields(job.path, job.config)
    if differ == []:
        say(f"{what}: already trained in {job.path}, reusing it")
        return json.loads((job.path / "summary.json").read_text(encoding="utf-8")), True
    if differ:
        shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
        raise ValueError(
            f"{job.path} holds a finished run with other settings ({shown}); give another "
            "--out, or --overwrite to train it again"
        )
    say(f"{what}: training {job.config.model} -> {job.path}")
    return train(job.config, overwrite=overwrite), False  # train() refuses a stopped run
