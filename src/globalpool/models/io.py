"""Model checkpoints: safetensors weights, ``model.json`` beside them, and :func:`load_run`.

Nothing here unpickles. Files named ``.pt``/``.pth``/``.pkl`` or whose bytes start like
a pickle or a ``torch.save`` zip are refused with a ValueError before any byte is parsed.

Run directory (written by :func:`globalpool.train.train`)::

    run/
      config.json  model.json  metrics.jsonl  metrics.csv  summary.json
      checkpoints/best.safetensors  checkpoints/last.safetensors
      checkpoints/last.state.safetensors  checkpoints/last.state.json
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from globalpool.atomic import atomic_write_bytes, atomic_write_text
from globalpool.models.sizing import size_pair

if TYPE_CHECKING:
    from globalpool.models.classifier import Classifier

MODEL_JSON = "model.json"
CHECKPOINT_DIR = "checkpoints"
RUN_FORMAT = "globalpool-run/1"
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel and/or ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _refuse_pickle_name(path: str) -> None:
    if path.lower().endswith(_PICKLE_SUFFIXES):
        raise ValueError(
            f"refusing to load {path}: a pickle-based PyTorch file (.pt/.pth/.pkl) can run "
            "arbitrary code when loaded; expected a .safetensors checkpoint"
        )


def _refuse_pickle_content(path: str, head: bytes) -> None:
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise ValueError(
            f"refusing to load {path}: its content is a Python pickle; expected safetensors"
        )
    if head[:4] == b"PK\x03\x04":
        raise ValueError(
            f"refusing to load {path}: its content is a torch.save zip archive (pickle "
            "inside); expected safetensors"
        )


# bytes per element of each safetensors dtype
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2,
    "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_header(path: str, header) -> int:
    """The end of the data a safetensors header describes; a ValueError naming the
    file and the first fault where the header does not describe tensors."""
    # a dict: read_safetensors has seen that it starts with '{'
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(f"{path}: __metadata__ must map names to strings")
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise ValueError(
                f"{path}: tensor {name!r} is a JSON {type(info).__name__}, not an object"
            )
        for key in ("dtype", "shape", "data_offsets"):
            if key not in info:
                raise ValueError(f"{path}: tensor {name!r} has no {key}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPE_BYTES:
            raise ValueError(f"{path}: tensor {name!r} has an unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise ValueError(
                f"{path}: tensor {name!r} has a shape that is not a list of sizes: {shape!r}"
            )
        pair = isinstance(offsets, list) and len(offsets) == 2
        if not (pair and all(_is_count(o) for o in offsets) and offsets[0] <= offsets[1]):
            raise ValueError(f"{path}: tensor {name!r} has bad data_offsets {offsets!r}")
        need = math.prod(shape) * _DTYPE_BYTES[dtype]
        if offsets[1] - offsets[0] != need:
            raise ValueError(
                f"{path}: tensor {name!r} ({dtype} {shape}) needs {need} bytes, its "
                f"data_offsets span {offsets[1] - offsets[0]}"
            )
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    for (_, end, first), (begin, _, second) in itertools.pairwise(spans):
        if begin < end:
            raise ValueError(f"{path}: tensors {first!r} and {second!r} overlap in the data")
    return max((end for _, end, _ in spans), default=0)


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file into CPU tensors, checking it first.

    Returns:
        ``(tensors, metadata)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a pickle file, not safetensors, or truncated (the message says which
            and gives the expected and actual sizes).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    _refuse_pickle_name(path)
    with open(path, "rb") as fh:
        data = fh.read()
    size = len(data)
    if size < 8:
        _refuse_pickle_content(path, data)
        raise ValueError(f"checkpoint {path} is truncated or empty: {size} bytes")
    (header_len,) = struct.unpack("<Q", data[:8])
    # A safetensors file starts with its header length, then '{'. Only when it does not
    # can the first bytes be a pickle's (0x80 0x04 is also a valid header length).
    if header_len > 100_000_000 or (size > 8 and data[8:9] != b"{"):
        _refuse_pickle_content(path, data[:8])
        raise ValueError(f"{path} is not a safetensors file (bad header)")
    if 8 + header_len > size:
        raise ValueError(
            f"checkpoint {path} is truncated: its header needs {8 + header_len} bytes, "
            f"the file has {size}"
        )
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a safetensors file: bad header ({err})") from None
    end = _check_header(path, header)
    expected = 8 + header_len + end
    if size < expected:
        raise ValueError(f"checkpoint {path} is truncated: expected {expected} bytes, found {size}")
    try:
        tensors = st_load(data)
    except SafetensorError as err:
        raise ValueError(f"{path} is not a valid safetensors file: {err}") from None
    return tensors, dict(header.get("__metadata__") or {})


def save_weights(
    model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> None:
    """Write the model's ``state_dict`` (parameters and buffers) as safetensors, atomically.

    Args:
        model: any module; DDP and ``torch.compile`` wrappers are removed first.
        path: target file (``.safetensors``); parent directories are created.
        metadata: small str-able values stored in the file header (epoch...).

    Example:
        >>> import tempfile, os
        >>> from torch import nn
        >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> save_weights(nn.Linear(2, 3), p, {"epoch": 1})
        >>> sorted(read_safetensors(p)[0])
        ['bias', 'weight']
    """
    path = os.fspath(path)
    if path.lower().endswith(_PICKLE_SUFFIXES):
        raise ValueError(f"weights are saved as .safetensors, not {os.path.splitext(path)[1]}")
    state = {
        k: v.detach().to("cpu", copy=True).contiguous()
        for k, v in unwrap_model(model).state_dict().items()
    }
    meta = {"format": RUN_FORMAT, **{k: str(v) for k, v in (metadata or {}).items()}}
    atomic_write_bytes(path, st_save(state, metadata=meta))


def load_weights_into(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(tensors)`` with clear errors instead of torch's.

    Raises:
        ValueError: wrong class count (the head's output size differs), or a checkpoint
            of another model (missing/unexpected keys, other shapes), naming the keys.
    """
    model = unwrap_model(model)
    expected = model.state_dict()
    num_classes = getattr(model, "num_classes", None)
    mismatched = [
        (k, tuple(tensors[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if mismatched and num_classes is not None and not missing and not unexpected:
        head = [m for m in mismatched if m[0].startswith("head.")]
        if len(head) == len(mismatched) and all(
            m[2][0] == num_classes and m[1][0] != num_classes for m in head
        ):
            raise ValueError(
                f"{source} was trained for {head[0][1][0]} classes but the model has "
                f"{num_classes} (key {head[0][0]!r}: checkpoint {head[0][1]}, "
                f"model {head[0][2]}); use the model.json of the same run"
            )
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) e.g. {', '.join(unexpected[:3])}")
        raise ValueError(f"{source} holds the weights of a different model: " + "; ".join(parts))
    if mismatched:
        k, got, want = mismatched[0]
        raise ValueError(
            f"{source} holds the weights of a different model: {len(mismatched)} shape "
            f"mismatch(es), e.g. {k!r} is {got} in the checkpoint but {want} in the model"
        )
    model.load_state_dict(tensors, strict=True)


def write_model_json(run_dir: str | os.PathLike, info: dict[str, Any]) -> None:
    """Write ``run_dir/model.json`` (model_args, classes, mean, std, input_size...)."""
    atomic_write_text(
        os.path.join(run_dir, MODEL_JSON),
        json.dumps({"format": RUN_FORMAT, **info}, indent=2) + "\n",
    )


def _resolve(path: str) -> tuple[str, str]:
    """(run_dir, checkpoint file) for a run directory or a checkpoint path."""
    if os.path.isdir(path):
        ckpt_dir = os.path.join(path, CHECKPOINT_DIR)
        for name in ("best.safetensors", "last.safetensors"):
            if os.path.isfile(os.path.join(ckpt_dir, name)):
                return path, os.path.join(ckpt_dir, name)
        raise FileNotFoundError(
            f"no checkpoint in run directory {path}: expected "
            f"{CHECKPOINT_DIR}/best.safetensors or {CHECKPOINT_DIR}/last.safetensors"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(f"no run directory or checkpoint at {path}")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(folder) == CHECKPOINT_DIR and not os.path.isfile(
        os.path.join(folder, MODEL_JSON)
    ):
        folder = os.path.dirname(folder)
    return folder, path


def _check_normalisation(meta: dict, meta_path: str) -> None:
    """mean and std: one finite number per input channel, std > 0 (a missing or tampered
    entry would predict on unnormalised inputs, or divide by zero)."""
    chans = meta["model_args"].get("in_chans", meta.get("in_chans", 3))
    for key in ("mean", "std"):
        values = meta.get(key)
        ok = (
            isinstance(values, list)
            and len(values) == chans
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        )
        if not ok:
            raise ValueError(
                f"{meta_path}: {key!r} must list {chans} finite numbers (one per input "
                f"channel); got {values!r}"
            )
    if any(v <= 0 for v in meta["std"]):
        raise ValueError(f"{meta_path}: 'std' must be > 0; got {meta['std']}")


def _check_size_before_building(meta: dict, meta_path: str, tensors: dict) -> None:
    """Refuse a model.json whose class count is far above any weight's row count (the
    last layer's weight is (num_classes, ...)), before a tampered count (2e6) allocates."""
    k = meta["model_args"].get("num_classes")
    if k is None:
        return
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{meta_path}: num_classes must be a positive int; got {k!r}")
    # A modest mismatch gets the precise message of load_weights_into; a large class
    # count that no weight has is refused here, before the model is built.
    largest = max((t.shape[0] for t in tensors.values() if t.dim() >= 1), default=0)
    if k > max(4 * largest, 4096) and not any(
        t.dim() >= 1 and t.shape[0] == k for t in tensors.values()
    ):
        raise ValueError(
            f"{meta_path} says num_classes {k}, but no weight of the checkpoint has {k} "
            "rows: model.json and the checkpoint do not belong together"
        )


def build_model_from_meta(meta: dict[str, Any]) -> nn.Module:
    """``create_model`` from the ``model_args`` of a ``model.json``."""
    from globalpool.models import create_model

    args = dict(meta["model_args"])
    name = args.pop("name", None) or meta.get("model")
    if name is None:
        raise ValueError("model.json names no model (model_args.name or model)")
    return create_model(name, **args)


def load_run(path: str | os.PathLike, *, which: str = "best") -> tuple[Classifier, dict]:
    """Rebuild a trained model from a run directory or one of its checkpoints.

    Args:
        path: a run directory (its ``checkpoints/<which>.safetensors`` is loaded, falling
            back to ``last``) or a ``.safetensors`` file inside a run.
        which: ``best`` or ``last`` when ``path`` is a directory.

    Returns:
        ``(model, meta)``: the Classifier in eval mode on the CPU, its ``classes``,
        ``mean``, ``std`` and ``input_size`` from the run's ``model.json``; and that file
        plus ``run_dir``, ``checkpoint`` and ``epoch`` (of the weights, when recorded).

    Raises:
        FileNotFoundError: no run / checkpoint / model.json.
        ValueError: pickle file refused, truncated file, weights of another model, or
            of another class count.

    Example:
        >>> model, meta = load_run("runs/x")  # doctest: +SKIP
        >>> model(torch.zeros(1, 3, *meta["input_size"])).shape  # doctest: +SKIP
        torch.Size([1, 3])
    """
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last'; got {which!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        from globalpool.pretrained import pretrained_path

        shipped = pretrained_path(path)  # a shipped model's name
        path = os.fspath(shipped) if shipped is not None else path
    if os.path.isdir(path):
        preferred = os.path.join(path, CHECKPOINT_DIR, f"{which}.safetensors")
        run_dir, ckpt = (path, preferred) if os.path.isfile(preferred) else _resolve(path)
    else:
        run_dir, ckpt = _resolve(path)
    tensors, file_meta = read_safetensors(ckpt)
    meta_path = os.path.join(run_dir, MODEL_JSON)
    if not os.path.isfile(meta_path):
        raise FileNotFoundError(
            f"{meta_path} not found: a checkpoint needs the model.json of its run to be rebuilt"
        )
    with open(meta_path, encoding="utf-8") as fh:
        try:
            meta = json.load(fh)
        except json.JSONDecodeError as err:
            raise ValueError(f"{meta_path} is not valid JSON: {err}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model_args"), dict):
        raise ValueError(f"{meta_path} has no 'model_args'; was it written by globalpool?")
    _check_normalisation(meta, meta_path)
    _check_size_before_building(meta, meta_path, tensors)
    model = build_model_from_meta(meta)
    classes = meta.get("classes")
    if classes is not None and len(classes) != model.num_classes:
        raise ValueError(
            f"{meta_path} lists {len(classes)} classes but its model_args build a model "
            f"with {model.num_classes}"
        )
    load_weights_into(model, tensors, ckpt)
    if classes is not None:
        model.classes = [str(c) for c in classes]
    for key in ("mean", "std"):  # checked by _check_normalisation
        setattr(model, key, None if meta.get(key) is None else [float(v) for v in meta[key]])
    if meta.get("input_size") is not None:
        model.input_size = size_pair(meta["input_size"], "input_size")
    model.eval()
    meta = dict(meta)
    meta.update(run_dir=run_dir, checkpoint=ckpt)
    if "epoch" in file_meta and file_meta["epoch"].isdigit():
        meta["epoch"] = int(file_meta["epoch"])
    return model, meta
