"""One writer per run directory: an advisory lock held while a training writes there.

The lock is ``fcntl.flock`` on ``<run_dir>/.lock``: the kernel releases it when the
process ends in any way (exit, exception, kill -9, a crash), so a lock left by a dead run
never blocks the next one, and there is nothing stale to clean. The file itself stays and
names the last holder (pid, host, start time) for the message a second writer gets. Where
``fcntl`` does not exist (Windows) runs are not locked.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".lock"

__all__ = [
    "LOCK_NAME", "RunDirBusy", "check_run_dir", "clean_checkpoints", "commit_checkpoints",
    "run_dir_lock",
]  # fmt: skip


class RunDirBusy(ValueError):
    """Another process is training into this run directory."""


def check_run_dir(run_dir: str | os.PathLike) -> Path:
    """Create ``run_dir`` (and its parents) or say in one line why it cannot be a run
    directory (a file is in the way, no permission); checked before any training work."""
    path = Path(run_dir)
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"the run directory {path} cannot be made: {parent} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write the run directory {path}: {err.strerror or err}") from None
    return path


def _remove_if_untouched(path: Path, created: list[Path]) -> None:
    """After a start that failed (a bad dataset option, a size no memory holds), remove
    the lock file and the folders this start created, when nothing else was written."""
    try:
        if set(os.listdir(path)) <= {LOCK_NAME}:
            (path / LOCK_NAME).unlink(missing_ok=True)
            for folder in created:  # deepest first
                folder.rmdir()
    except OSError:  # another writer got there, or no permission: leave it
        pass


@contextlib.contextmanager
def run_dir_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the run directory's lock for the ``with`` block; yields the directory.

    When the block raises before anything but the lock is written, the lock file and the
    folders this call created are removed: a refused start leaves nothing behind.

    Raises:
        RunDirBusy: another live process holds it (the message names it).
        ValueError: the directory cannot be created or written.
    """
    created = [p for p in (Path(run_dir), *Path(run_dir).parents) if not p.exists()]
    path = check_run_dir(run_dir)
    if fcntl is None:
        try:
            yield path
        except BaseException:
            _remove_if_untouched(path, created)
            raise
        return
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirBusy(
                f"{path} is in use by another training ({holder}); wait for it to end, or "
                "give another --out"
            ) from None
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode(), 0)
        try:
            yield path
        except BaseException:
            _remove_if_untouched(path, created)
            raise
    finally:
        os.close(fd)  # releases the lock


# ------------------------------------------------------------------ checkpoint sets
# ``checkpoints`` is a symbolic link to ``.ckpt-e<epoch>``, the folder of the last
# committed epoch. An epoch's files (weights, best weights, optimiser and RNG state, the
# metrics history) are written into a fresh folder, which becomes the current one by one
# atomic rename of a new link over the old: a kill at any instant leaves either the
# previous epoch's complete set or the new one, never a mix.
EPOCH_PREFIX = ".ckpt-e"
_TMP_SUFFIX = ".tmp"


def _epoch_dir(base: Path, epoch: int) -> Path:
    return base / f"{EPOCH_PREFIX}{epoch:05d}"


def clean_checkpoints(run_dir: str | os.PathLike, link_name: str, *, keep_current: bool) -> None:
    """Remove what an interrupted commit left (temporary folders and links, epoch folders
    the link does not point to) and, unless ``keep_current``, the current set too."""
    import shutil

    base = Path(run_dir)
    link = base / link_name
    current = link.resolve() if keep_current and link.is_symlink() else None
    if not keep_current:
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():  # a run directory from before checkpoint sets
            shutil.rmtree(link)
    for entry in base.iterdir():
        name = entry.name
        if name.startswith(EPOCH_PREFIX) or name == f".{link_name}{_TMP_SUFFIX}":
            if entry.resolve() == current:
                continue
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
            else:
                shutil.rmtree(entry, ignore_errors=True)


def commit_checkpoints(
    run_dir: str | os.PathLike, link_name: str, epoch: int, write, *, carry: tuple[str, ...]
) -> Path:
    """Write one epoch's checkpoint set and make it current in one atomic step.

    Args:
        run_dir: the run directory.
        link_name: the name readers open (``checkpoints``).
        epoch: the epoch being committed.
        write: ``write(folder)`` writes the set's files into ``folder``.
        carry: files of the current set kept in the new one unless ``write`` wrote them
            (``best.safetensors`` when this epoch is not the best), hard-linked, not copied.

    Returns:
        the new set's folder.
    """
    import shutil

    base = Path(run_dir)
    link = base / link_name
    final = _epoch_dir(base, epoch)
    tmp = final.with_name(final.name + _TMP_SUFFIX)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write(tmp)
    previous = link.resolve() if link.exists() else None
    for name in carry:
        if previous is not None and (previous / name).is_file() and not (tmp / name).exists():
            try:
                os.link(previous / name, tmp / name)
            except OSError:  # no hard links on this file system
                shutil.copyfile(previous / name, tmp / name)
    if final.exists() and final.resolve() != previous:  # left by a kill after its rename
        shutil.rmtree(final)
    os.replace(tmp, final)
    if link.is_dir() and not link.is_symlink():  # a run from before checkpoint sets
        os.replace(link, base / f"{EPOCH_PREFIX}legacy")
    new_link = base / f".{link_name}{_TMP_SUFFIX}"
    with contextlib.suppress(FileNotFoundError):
        new_link.unlink()
    os.symlink(final.name, new_link)
    os.replace(new_link, link)  # the commit
    clean_checkpoints(base, link_name, keep_current=True)
    return final
