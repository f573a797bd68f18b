"""Pretrained globalpool models shipped inside the package (about 2.5 MB in all).

Each lives in ``globalpool/pretrained/<name>/``: ``model.json`` (as in a run directory),
``weights.safetensors`` and ``card.json`` (data, the command that trained it, test
accuracy, sha256 of the weights). ``globalpool.load("<name>")``, ``--checkpoint <name>``
of every command and :func:`pretrained_path` find them offline; nothing is downloaded.
Imports nothing of globalpool.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["list_pretrained", "pretrained_card", "pretrained_path", "sha256_of"]

_HERE = Path(__file__).resolve().parent
WEIGHTS = "weights.safetensors"


def list_pretrained() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.name for p in _HERE.iterdir() if (p / "card.json").is_file())


def pretrained_card(name: str) -> dict:
    """The model card of ``name`` (ValueError naming the shipped ones otherwise)."""
    if name not in list_pretrained():
        raise ValueError(
            f"no pretrained model {name!r}; shipped: {', '.join(list_pretrained()) or 'none'}"
        )
    return json.loads((_HERE / name / "card.json").read_text(encoding="utf-8"))


def pretrained_path(name: str) -> Path | None:
    """The weights file of the shipped model ``name`` (beside its model.json), or None
    when ``name`` is not one of them."""
    path = _HERE / str(name) / WEIGHTS
    return path if str(name) in list_pretrained() and path.is_file() else None


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
