"""Entry point of the ``globalpool`` command.

Each sub-command lives in its own module ``globalpool/cli/cmd_<name>.py`` that defines
``register(subparsers)``; it adds its parser and sets ``func`` (called with the parsed
args, returns an exit code). Modules are discovered, so adding a command touches no
other file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from globalpool import __version__


class UserError(Exception):
    """A mistake in the command line or its inputs: printed without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported as one line (no usage block), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="globalpool",
        description="Global pooling for CNNs: operators, models, training, CAM, export.",
    )
    parser.add_argument("--version", action="version", version=f"globalpool {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import globalpool.cli as cli_pkg

    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"globalpool.cli.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error already printed
        return done.code if isinstance(done.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # the command as given, for the records that keep the command reproducing them
    import shlex

    args.command_line = shlex.join(["globalpool", *(sys.argv[1:] if argv is None else argv)])
    try:
        threads = getattr(args, "threads", None)  # its range is checked where it is parsed
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (`globalpool features ... | head`): stop quietly, and point
        # stdout at devnull so the interpreter's final flush does not fail again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        # User mistakes surface as one clear line; real bugs in our code still raise
        # when GLOBALPOOL_DEBUG is set. Errors of other kinds that are the user's to fix
        # (a missing optional extra, weights that could not be downloaded) say so with a
        # ``user_error = True`` class attribute.
        import os

        user = isinstance(err, (UserError, ValueError, TypeError, FileNotFoundError, KeyError))
        if os.environ.get("GLOBALPOOL_DEBUG") or not (user or getattr(err, "user_error", False)):
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"globalpool {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
