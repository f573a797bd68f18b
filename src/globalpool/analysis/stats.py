"""Statistics over seeds, in one place: summaries (mean, sample sd, min, max) and
Welch's t-test, which every verdict of the project (the report's claims, its "Over
seeds" section) uses at the level ``ALPHA``."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence

__all__ = ["ALPHA", "describe", "mean_sd", "welch"]

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
