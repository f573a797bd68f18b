"""Run checkpoints as the training loop writes them: the model I/O of
:mod:`globalpool.models.io` (safetensors weights + ``model.json``, never pickle), under
the names this module has always had."""

from globalpool.models.io import (
    CHECKPOINT_DIR,
    MODEL_JSON,
    RUN_FORMAT,
    build_model_from_meta,
    load_run,
    load_weights_into,
    read_safetensors,
    save_weights,
    unwrap_model,
    write_model_json,
)

__all__ = [
    "CHECKPOINT_DIR", "MODEL_JSON", "RUN_FORMAT", "build_model_from_meta", "load_run",
    "load_weights_into", "read_safetensors", "save_weights", "unwrap_model",
    "write_model_json",
]  # fmt: skip
