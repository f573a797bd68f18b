"""The resumable training state, stored without pickle.

``optimizer.state_dict()``, the GradScaler state and the random number generator states
are split into tensors (one safetensors file, flat ``dotted.keys``) and scalars (one JSON
file). :func:`save_train_state` writes both atomically; :func:`load_train_state` reads
them back into the same nested structures.

File layout (``<prefix>.safetensors`` + ``<prefix>.json``):

- tensors: ``optim.state.<param index>.<name>`` (momentum buffers, Adam moments, steps),
  ``rng.torch`` (uint8), ``rng.cuda.<i>`` (uint8), ``rng.numpy`` (uint32 key),
  ``rng.python`` (int64 state words);
- JSON: ``optim_param_groups``, ``optim_scalars`` (non-tensor per-parameter values),
  ``rng`` (numpy/python scalars), and every entry of ``extra`` (epoch, step, best...).
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as st_save

from globalpool.atomic import atomic_write_bytes, atomic_write_text

_OPT = "optim.state."


def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into flat tensors and a JSON-able remainder.

    Returns:
        ``(tensors, scalars)``: ``tensors["optim.state.<i>.<name>"]`` for every tensor
        value, and ``{"param_groups": [...], "scalars": {"<i>": {name: value}}}`` for the
        rest (Python numbers, None).
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, per_param in state_dict["state"].items():
        for name, value in per_param.items():
            if "." in name:
                raise ValueError(f"optimizer state name {name!r} contains '.'")
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPT}{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    groups = []
    for group in state_dict["param_groups"]:
        groups.append({k: list(v) if isinstance(v, tuple) else v for k, v in group.items()})
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    """Inverse of :func:`flatten_optimizer_state`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(_OPT):
            index, name = key[len(_OPT) :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    for index, values in rest.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = []
    for group in rest["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def capture_rng() -> tuple[dict[str, torch.Tensor], dict]:
    """The torch (CPU and CUDA), numpy and Python RNG states as tensors + JSON scalars."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(key, dtype=np.uint32).copy())
    version, words, gauss_next = random.getstate()
    tensors["rng.python"] = torch.tensor(words, dtype=torch.int64)
    scalars = {
        "numpy": [kind, int(pos), int(has_gauss), float(gauss)],
        "python": [version, gauss_next],
    }
    return tensors, scalars


def restore_rng(tensors: dict[str, torch.Tensor], scalars: dict) -> None:
    """Inverse of :func:`capture_rng` (CUDA states only where CUDA is present)."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, pos, has_gauss, gauss = scalars["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy(), pos, has_gauss, gauss))
    version, gauss_next = scalars["python"]
    random.setstate((version, tuple(int(w) for w in tensors["rng.python"].tolist()), gauss_next))


def save_train_state(
    prefix: str | os.PathLike,
    *,
    optimizer: torch.optim.Optimizer,
    scaler: Any | None = None,
    extra: dict[str, Any] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write ``<prefix>.safetensors`` and ``<prefix>.json`` atomically.

    Args:
        prefix: path without extension, e.g. ``run/checkpoints/last.state``.
        optimizer: its ``state_dict()`` is stored.
        scaler: a ``torch.amp.GradScaler`` (its state is all scalars), or None.
        extra: JSON-able values stored as they are (epoch, step, best accuracy...).
        tensors: more named CPU tensors to keep (the lookahead average); their names must
            not start with ``optim.`` or ``rng.``.
    """
    prefix = os.fspath(prefix)
    opt_tensors, opt_rest = flatten_optimizer_state(optimizer.state_dict())
    rng_tensors, rng_scalars = capture_rng()
    doc = dict(extra or {})
    doc.update(
        optim_param_groups=opt_rest["param_groups"],
        optim_scalars=opt_rest["scalars"],
        rng=rng_scalars,
        scaler=scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
    )
    epoch = str(doc.get("epoch", ""))
    atomic_write_bytes(
        prefix + ".safetensors",
        st_save({**(tensors or {}), **opt_tensors, **rng_tensors}, {"epoch": epoch}),
    )
    atomic_write_text(prefix + ".json", json.dumps(doc, indent=1) + "\n")


def load_train_state(prefix: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read the pair written by :func:`save_train_state`: ``(tensors, doc)``.

    Raises FileNotFoundError when either file is missing and ValueError when they belong
    to different epochs (a crash between the two writes).
    """
    from globalpool.train.checkpoint import read_safetensors

    prefix = os.fspath(prefix)
    for suffix in (".safetensors", ".json"):
        if not os.path.isfile(prefix + suffix):
            raise FileNotFoundError(f"training state file not found: {prefix + suffix}")
    tensors, meta = read_safetensors(prefix + ".safetensors")
    with open(prefix + ".json", encoding="utf-8") as fh:
        doc = json.load(fh)
    if meta.get("epoch", "") != str(doc.get("epoch", "")):
        raise ValueError(
            f"{prefix}.safetensors (epoch {meta.get('epoch')}) and {prefix}.json "
            f"(epoch {doc.get('epoch')}) do not match; the run was interrupted while saving"
        )
    return tensors, doc


def apply_train_state(
    tensors: dict[str, torch.Tensor],
    doc: dict,
    *,
    optimizer: torch.optim.Optimizer,
    scaler: Any | None = None,
) -> None:
    """Load optimizer, scaler and RNG states read by :func:`load_train_state`."""
    optimizer.load_state_dict(
        unflatten_optimizer_state(
            tensors, {"param_groups": doc["optim_param_groups"], "scalars": doc["optim_scalars"]}
        )
    )
    if scaler is not None and doc.get("scaler"):
        scaler.load_state_dict(doc["scaler"])
    restore_rng(tensors, doc["rng"])
