"""Progress bars (tqdm) that stay silent when output is not a terminal or when quiet."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def bars_enabled(quiet: bool, is_main: bool = True) -> bool:
    """Bars only on rank 0, when not quiet and stderr is a terminal."""
    return is_main and not quiet and sys.stderr.isatty()


def progress(iterable: Iterable, *, enabled: bool, **kwargs: Any) -> Iterable:
    """``tqdm(iterable, **kwargs)`` when enabled, else ``iterable`` itself (no overhead)."""
    if not enabled:
        return iterable
    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kwargs)
