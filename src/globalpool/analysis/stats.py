"""Statistics over seeds, in one place: summaries (mean, sample sd, min, max), Welch's
t-test, and :func:`verdict`, the one rule that decides every claim of the project (the
report's claims, its "Over seeds" section, ``globalpool reproduce``) at the level
``ALPHA``."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence

__all__ = ["ALPHA", "describe", "mean_sd", "verdict", "welch"]

ALPHA = 0.05  # the significance level of every verdict over seeds


def describe(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation (0 for one value), min, max and count of the
    values that are not None (all None when none is left).

    Example:
        >>> describe([1.0, 3.0])
        {'mean': 2.0, 'std': 1.4142135623730951, 'min': 1.0, 'max': 3.0, 'n': 2}
    """
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, sample sd)`` of at least one value (sd 0 for one)."""
    d = describe(values)
    return d["mean"], d["std"]


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t statistic and two-sided p-value of mean(a) - mean(b) (unequal variances).

    Seeds with no spread at all (every value equal on both sides) give t = 0, p = 1 when
    the means agree and t = ±inf, p = 0 when they differ.
    """
    from scipy import stats

    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        diff = statistics.fmean(a) - statistics.fmean(b)
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    with warnings.catch_warnings():  # nearly equal seeds: scipy warns of lost digits
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def verdict(a: Sequence[float], b: Sequence[float], a_higher_claimed: bool) -> dict:
    """Whether the seeds' scores ``a`` and ``b`` bear out a claimed ordering.

    The rule of every verdict: Welch's t-test (two-sided) of mean(a) - mean(b);
    ``holds`` when p < ALPHA in the claimed direction (``a`` higher when
    ``a_higher_claimed``, lower otherwise), ``reversed`` when p < ALPHA the other way,
    ``not separated`` when p >= ALPHA, ``untested`` with fewer than 2 seeds a side.

    Returns:
        dict: ``diff`` (mean a - mean b), ``t``, ``p`` (None when untested), ``verdict``.

    Example:
        >>> verdict([80.0, 81.0, 82.0], [70.0, 71.0, 72.0], a_higher_claimed=True)["verdict"]
        'holds'
        >>> verdict([80.0, 90.0, 70.0], [79.0, 81.0, 77.0], a_higher_claimed=True)["verdict"]
        'not separated'
    """
    diff = statistics.fmean(a) - statistics.fmean(b)
    if min(len(a), len(b)) < 2:
        return {"diff": diff, "t": None, "p": None, "verdict": "untested"}
    t, p = welch(a, b)
    if p >= ALPHA:
        outcome = "not separated"
    else:
        outcome = "holds" if (diff > 0) == a_higher_claimed else "reversed"
    return {"diff": diff, "t": t, "p": p, "verdict": outcome}
