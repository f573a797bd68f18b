"""Summaries over seeds: mean, sample standard deviation, min, max."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["describe"]


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
