"""Atomic file writes, the one implementation every layer uses.

A temporary file is written beside the target, then renamed over it with ``os.replace``:
a reader (or a later run) sees either the old file or the complete new one, never half a
file, and an interrupted write leaves no temporary behind. Imports nothing of globalpool.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; move it into place on success.

    The parent folder is created. On any exception (KeyboardInterrupt included) the
    temporary file is removed and ``final_path`` is left as it was. The file gets the
    usual permissions (0666 less the umask), not mkstemp's private 0600.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> with atomic_path(os.path.join(d, "a.txt")) as tmp:
        ...     _ = tmp.write_text("done")
        >>> open(os.path.join(d, "a.txt")).read()
        'done'
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final_path.name}.", suffix=".tmp", dir=final_path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, _default_mode())
        os.replace(tmp, final_path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
