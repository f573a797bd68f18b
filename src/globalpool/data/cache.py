"""On-disk cache of decoded image tensors, and atomic file writes.

Decoded arrays are stored as safetensors (never pickle) with a JSON metadata string.
A cache entry is named by a hash of (kind, absolute source path, options) and records a
fingerprint of the source (sizes and modification times); a different fingerprint is a
miss, and the entry is rewritten. Every write goes to a temporary file in the same
folder and is renamed into place only when complete, so an interrupted run never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from globalpool.atomic import atomic_path

ENV_CACHE_DIR = "GLOBALPOOL_CACHE"


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$GLOBALPOOL_CACHE``, else ``~/.cache/globalpool``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "globalpool"


def file_fingerprint(path: Path) -> dict:
    """Size and modification time of one file."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def entries_fingerprint(stats: list[tuple[str, int, int]]) -> dict:
    """Fingerprint of many files given as (relative name, size, mtime_ns)."""
    digest = hashlib.sha256()
    for name, size, mtime in sorted(stats):
        digest.update(f"{name}\0{size}\0{mtime}\n".encode())
    return {"files": len(stats), "sha256": digest.hexdigest()}


def cache_file(cache_dir: Path, kind: str, source: Path, options: dict) -> Path:
    key = json.dumps(
        {"kind": kind, "source": str(Path(source).resolve()), "options": options}, sort_keys=True
    )
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    return cache_dir / "decoded" / f"{kind}-{name}.safetensors"


def load_entry(path: Path, fingerprint: dict) -> tuple[dict[str, np.ndarray], dict] | None:
    """Arrays and metadata of a cache entry, or None on a miss (absent, stale, unreadable)."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            meta = json.loads((f.metadata() or {}).get("globalpool", "{}"))
            if meta.get("fingerprint") != fingerprint:
                return None
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as err:  # a damaged cache file is a miss, rebuilt below
        warnings.warn(f"ignoring unreadable cache file {path}: {err}", stacklevel=3)
        return None
    return arrays, meta


def save_entry(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write arrays + JSON metadata atomically."""
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata={"globalpool": json.dumps(meta)})


def cached_arrays(
    kind: str,
    source: Path,
    options: dict,
    fingerprint: dict,
    build: Callable[[], tuple[dict[str, np.ndarray], dict]],
    *,
    cache_dir: str | os.PathLike | None = None,
    enabled: bool = True,
) -> tuple[dict[str, np.ndarray], dict, bool]:
    """``build()``'s (arrays, meta), read from the cache when the fingerprint matches.

    Returns:
        ``(arrays, meta, hit)`` where ``hit`` says whether the cache answered.
    """
    if not enabled:
        arrays, meta = build()
        return arrays, meta, False
    path = cache_file(default_cache_dir(cache_dir), kind, source, options)
    found = load_entry(path, fingerprint)
    if found is not None:
        return found[0], found[1], True
    arrays, meta = build()
    meta = {**meta, "fingerprint": fingerprint}
    try:
        save_entry(path, arrays, meta)
    except OSError as err:  # a read-only cache dir must not stop the load
        warnings.warn(f"could not write cache file {path}: {err}", stacklevel=3)
    return arrays, meta, False
