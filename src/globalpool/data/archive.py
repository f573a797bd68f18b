"""Read the files of a .tar, .tar.gz/.tgz/.tar.bz2/.tar.xz or .zip archive, in memory.

Members are only read, never extracted, so names cannot escape a folder; links,
devices and other non-regular members are skipped. A damaged archive raises a
ValueError naming the file.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")


def is_archive(path: str | Path) -> bool:
    """True when ``path``'s name ends in one of ``ARCHIVE_SUFFIXES``."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def _clean(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError)


def iter_archive(
    path: str | Path, *, with_dirs: bool = False
) -> Iterator[tuple[str, bytes | None]]:
    """Yield ``(name, data)`` for each regular file of the archive, in archive order.

    With ``with_dirs`` directory entries are yielded too, as ``(name, None)``.
    Names use "/" and carry no leading "./".
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"archive {path} does not exist")
    try:
        if str(path).lower().endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        if with_dirs:
                            yield _clean(info.filename), None
                        continue
                    yield _clean(info.filename), zf.read(info)
        else:
            with tarfile.open(path, mode="r:*") as tf:
                for member in tf:
                    if member.isdir():
                        if with_dirs:
                            yield _clean(member.name), None
                    elif member.isfile():
                        fobj = tf.extractfile(member)
                        yield _clean(member.name), fobj.read() if fobj else b""
    except _READ_ERRORS as err:
        raise ValueError(
            f"cannot read archive {path}: it is damaged or not an archive ({err})"
        ) from err
