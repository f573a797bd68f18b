"""Training: the config, the loop, checkpoints and distributed data parallel.

Imports ``globalpool.data`` and ``globalpool.models`` (lazily, inside :func:`train`).
"""

from globalpool.train.checkpoint import load_run, read_safetensors, save_weights
from globalpool.train.config import TrainConfig
from globalpool.train.loop import TrainingDiverged, train

__all__ = [
    "TrainConfig",
    "TrainingDiverged",
    "load_run",
    "read_safetensors",
    "save_weights",
    "train",
]
