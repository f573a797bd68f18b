"""Shared helpers of the docs figure scripts (run by docs/hooks.py, one process each).

A script is called as ``python docs/gen/NAME.py --out DIR [--quick] [--dep NAME=DIR]...``
and writes Markdown snippets (``*.md``) and figures (``*.png``) into DIR. Snippets refer
to their figures as ``gen/NAME/FILE.png``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GLOBALPOOL = [sys.executable, "-m", "globalpool"]


class Args(argparse.Namespace):
    out: Path
    quick: bool
    deps: dict[str, Path]
    name: str


def parse_args(name: str) -> Args:
    parser = argparse.ArgumentParser(description=f"docs figures: {name}")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="smallest runs (tests, drafts)")
    parser.add_argument("--dep", action="append", default=[], metavar="NAME=DIR")
    args = parser.parse_args(namespace=Args())
    args.deps = {k: Path(v) for k, v in (d.split("=", 1) for d in args.dep)}
    args.name = name
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.manual_seed(0)
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return args


def write(args: Args, filename: str, text: str) -> None:
    (args.out / filename).write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def figure_link(args: Args, filename: str) -> str:
    return f"gen/{args.name}/{filename}"


def run_cli(argv: Sequence[str], *, cwd: Path | None = None, shown: str | None = None):
    """Run ``globalpool ARGV`` and return (the command as shown to readers, its stdout).

    Fails loudly (the docs build fails) when the command does."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [*GLOBALPOOL, *argv], cwd=cwd or ROOT, env=env, capture_output=True, text=True
    )
    command = shown or "globalpool " + shlex.join(argv)
    if proc.returncode != 0:
        raise SystemExit(
            f"docs: `{command}` failed with exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return command, proc.stdout


def console(command: str, output: str, *, max_lines: int | None = None) -> str:
    """A fenced console block: the command, then its output (optionally the last lines)."""
    lines = output.rstrip("\n").splitlines()
    if max_lines is not None and len(lines) > max_lines:
        lines = ["[...]", *lines[-max_lines:]]
    body = "\n".join(lines)
    return f"```console\n$ {command}\n{body}\n```"


def md_table(header: Sequence[str], rows: Sequence[Sequence], align: str = "") -> str:
    """A Markdown table; ``align`` has one letter per column, l or r (default l)."""
    align = align.ljust(len(header), "l")
    sep = ["--:" if a == "r" else ":--" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def shift_headings(text: str, to_level: int) -> str:
    """Shift every heading so the shallowest one sits at ``to_level`` (outside fences)."""
    levels = []
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"^(#{1,6})\s", line)):
            levels.append(len(m.group(1)))
    if not levels:
        return text
    delta = to_level - min(levels)
    out, fence = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"^(#{1,6})(\s.*)$", line)):
            line = "#" * min(6, max(1, len(m.group(1)) + delta)) + m.group(2)
        out.append(line)
    return "\n".join(out)
