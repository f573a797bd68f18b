"""Numeric command-line options checked where they are parsed, their range in their help.

``in_range(Range(int, 1))`` is an argparse ``type``: a value that is not a number, or is
outside the range, ends the command with one line saying what was expected and what came
(exit 2) before anything is loaded or written. :class:`~globalpool.train.config.Range`
is the one statement of a range; TrainConfig's fields take theirs from ``RANGES``.
Imports no torch, so building the parser stays fast.

Example:
    >>> from globalpool.train.config import Range
    >>> in_range(Range(int, 1))("3")
    3
"""

from __future__ import annotations

import argparse

from globalpool.train.config import Range

__all__ = ["Range", "add_range_option", "in_range"]


def in_range(allowed: Range, what: str | None = None):
    """An argparse ``type`` that parses ``allowed.kind`` and checks the range."""

    def parse(text: str):
        expected = what or allowed.text()
        try:
            value = allowed.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        try:
            allowed.check("value", value)  # refuses nan and inf too
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        return value

    parse.__name__ = allowed.kind.__name__  # argparse names the type in some messages
    return parse


def add_range_option(parser, *flags: str, allowed: Range, help: str, **kwargs):
    """``parser.add_argument`` with ``type=in_range(allowed)`` and the range in the help."""
    return parser.add_argument(
        *flags, type=in_range(allowed), help=f"{help}; {allowed.text()}", **kwargs
    )
