"""Training: the config, the loop, checkpoints and distributed data parallel.

Imports ``globalpool.data`` and ``globalpool.models`` (in :mod:`globalpool.train.setup`).
The names below load on first use, so reading a :class:`TrainConfig` (the CLI's
``--help``) does not import torch.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "TrainConfig": "globalpool.train.config",
    "TrainingDiverged": "globalpool.train.loop",
    "train": "globalpool.train.loop",
    "load_run": "globalpool.train.checkpoint",
    "read_safetensors": "globalpool.train.checkpoint",
    "save_weights": "globalpool.train.checkpoint",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'globalpool.train' has no attribute {name!r}")
