"""Export a Classifier to ONNX or TorchScript, optionally with a mask as second input.

Exported graphs take the *normalised* float32 image (N, C, H, W), as the PyTorch model
does; mean, std, classes and input size travel inside the file as metadata (ONNX
``metadata_props`` key ``globalpool``, TorchScript extra file ``globalpool.json``), read
back with :func:`read_export_metadata`.

Shapes: pooling-head models export with dynamic batch, height and width; fixed-size FC
heads with dynamic batch only (their Linear layer pins H and W). With ``mask=True`` the
graph is :class:`~globalpool.deploy.masked.MaskedClassifier`: inputs ``image`` and
``mask`` (N, H, W) bool on the image grid.

ONNX exporter: the TorchScript-based one (``torch.onnx.export(..., dynamo=False)``) by
default. It records shape reads as graph ops, so one file runs at every batch, height
and width, and exports every registered pool, masked or not, in ~0.2 s. The dynamo
exporter (torch 2.13's default) needs the extra ``onnxscript`` package, took 2-7 s per
fastnet export, and in our check failed ``torch.export`` for the gem and mixed pools
and for every masked model (data-dependent checks in the pools' mask validation); it is
offered as ``exporter="dynamo"`` for the pools it handles. Pools run their plain-torch
formulas while traced (``globalpool.pool.dispatch``), not the CPU kernels, which are
custom autograd Functions that torch.jit cannot serialise.

Every export is verified by default: the written file is reloaded and run at three
input shapes against PyTorch.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from globalpool.atomic import atomic_path
from globalpool.deploy.guards import (
    GuardedClassifier,
    MaskHasValidPixel,
    MaskMatchesImage,
    MinInputSize,
)
from globalpool.deploy.masked import MaskedClassifier
from globalpool.models.classifier import Classifier
from globalpool.models.memory import check_fits_memory
from globalpool.models.sizing import input_channels, is_fixed_size, size_pair

__all__ = [
    "ExportResult",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "opset_range",
    "read_export_metadata",
    "verification_inputs",
]

METADATA_KEY = "globalpool"
TORCHSCRIPT_EXTRA = "globalpool.json"


@dataclass
class ExportResult:
    """What an export wrote and how it was checked."""

    path: Path
    format: str
    inputs: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    verified_shapes: list[tuple[int, ...]] = field(default_factory=list)
    max_abs_diff: float | None = None


@dataclass(frozen=True)
class _Card:
    """What an export states about its model and probes it with."""

    classes: list[str]
    mean: list[float] | None
    std: list[float] | None
    input_size: tuple[int, int]
    min_input_size: tuple[int, int]
    in_chans: int
    model_args: dict | None


def _card(model: nn.Module) -> _Card:
    """A Classifier's own attributes; a plain nn.Module states no classes or
    normalisation and is probed at 32x32 with 3 channels, any size >= 1 allowed."""
    if isinstance(model, Classifier):
        return _Card(
            classes=list(model.classes),
            mean=None if model.mean is None else [float(v) for v in model.mean],
            std=None if model.std is None else [float(v) for v in model.std],
            input_size=model.input_size,
            min_input_size=size_pair(model.min_input_size, "min_input_size"),
            in_chans=model.in_chans,
            model_args=model.model_args,
        )
    return _Card([], None, None, (32, 32), (1, 1), input_channels(model), None)


def _metadata(model: nn.Module, fmt: str, mask: bool, dynamic: bool, names: list[str]) -> dict:
    card = _card(model)
    return {
        "format": fmt,
        "inputs": names,
        "outputs": ["logits"],
        "input_layout": "image float32 (N, C, H, W), normalised: (pixel / 255 - mean) / std"
        + ("; mask bool (N, H, W), True = valid pixel" if mask else ""),
        "dynamic_height_width": dynamic,
        "classes": card.classes,
        "mean": card.mean,
        "std": card.std,
        "input_size": list(card.input_size),
        "min_input_size": list(card.min_input_size),
        "model_args": card.model_args,
    }


def _random_mask(n: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """Valid region = a random top-left rectangle of at least half the image, per sample,
    plus scattered invalid pixels, so every pool really sees a partial mask."""
    mask = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        h0 = int(torch.randint(max(1, h // 2), h + 1, (1,), generator=generator))
        w0 = int(torch.randint(max(1, w // 2), w + 1, (1,), generator=generator))
        mask[i, :h0, :w0] = True
    holes = torch.rand(n, h, w, generator=generator) < 0.1
    holes[:, 0, 0] = False  # keep the corner: never an empty mask
    return mask & ~holes


# The lowest opset every registered pool exports at (GeM, Lp and mixed need 11; avg and
# max 9): measured on fastnet with each pool, torch 2.13.
MIN_OPSET = 11


def opset_range(exporter: str = "torchscript") -> tuple[int, int]:
    """The ONNX opsets :func:`export_onnx` takes with ``exporter``, lowest and highest.

    The highest is the installed torch's: its TorchScript exporter stops below its
    dynamo exporter (20 and 23 in torch 2.13). The dynamo exporter writes at least 18.
    """
    from torch.onnx import _constants

    highest = getattr(_constants, "ONNX_MAX_OPSET", 20)
    if exporter == "torchscript":
        highest = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", highest)
    return MIN_OPSET, highest


def check_opset(opset, exporter: str = "torchscript") -> int:
    """``opset`` when the installed torch can export it; a ValueError naming the range."""
    low, high = opset_range(exporter)
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        raise ValueError(
            f"opset must be an integer from {low} to {high} (the {exporter} exporter of "
            f"torch {torch.__version__}); got {opset!r}"
        )
    return opset


def verification_inputs(
    model: nn.Module, mask: bool = False, input_size=None, seed: int = 0
) -> list[tuple[torch.Tensor, ...]]:
    """Three example input tuples at different batch sizes and (if dynamic) H, W.

    Returns a list of ``(image,)`` or ``(image, mask)`` tuples, image float32
    (N, C, H, W) standard normal, mask bool (N, H, W).
    """
    card = _card(model)
    h, w = size_pair(input_size or card.input_size, "input_size")
    min_h, min_w = card.min_input_size
    if is_fixed_size(model):
        shapes = [(2, h, w), (1, h, w), (3, h, w)]
    else:
        shapes = [
            (2, h, w),
            (1, h + h // 2 + 1, w + 7),  # odd sizes: exercises ceil/floor in strides
            (3, max(min_h, h - 5), max(min_w, w + 3)),
        ]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n, hh, ww in shapes:
        check_fits_memory(model, card.in_chans, (hh, ww), batch=n, hint="pass a smaller input_size")
        image = torch.randn(n, card.in_chans, hh, ww, generator=gen)
        out.append((image, _random_mask(n, hh, ww, gen)) if mask else (image,))
    return out


def _prepare(model: nn.Module, mask: bool, input_size):
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module to export, got {type(model).__name__}")
    model = model.eval()
    fixed = is_fixed_size(model)
    if mask and fixed:
        raise ValueError(
            "--mask needs a pooling head: this model's FC head has no global pool to mask"
        )
    # The guards make the exported graph refuse what PyTorch refuses (see deploy.guards).
    inner = MaskedClassifier(model).eval() if mask else model
    module = GuardedClassifier(inner, _card(model).min_input_size, mask=mask).eval()
    names = ["image", "mask"] if mask else ["image"]
    if fixed:
        axes = {"image": {0: "batch"}}
        trained = size_pair(model.input_size, "input_size")
        if input_size is not None and size_pair(input_size, "input_size") != trained:
            raise ValueError(
                f"an FC-head model only runs at its trained size {tuple(model.input_size)}, "
                f"got size {input_size}"
            )
    else:
        axes = {"image": {0: "batch", 2: "height", 3: "width"}}
        if mask:
            axes["mask"] = {0: "batch", 1: "height", 2: "width"}
    axes["logits"] = {0: "batch"}
    examples = verification_inputs(model, mask=mask, input_size=input_size)
    return module, names, axes, examples, fixed


def _compare(run_exported, module: nn.Module, examples, tolerance: float):
    worst = 0.0
    with torch.no_grad():
        for inputs in examples:
            expected = module(*inputs).float()
            got = torch.as_tensor(run_exported(inputs)).float()
            if got.shape != expected.shape:
                raise RuntimeError(
                    f"exported graph gave shape {tuple(got.shape)} for inputs "
                    f"{[tuple(t.shape) for t in inputs]}, PyTorch {tuple(expected.shape)}"
                )
            diff = float((got - expected).abs().max())
            bound = tolerance * max(1.0, float(expected.abs().max()))
            if not diff <= bound:  # also catches NaN
                raise RuntimeError(
                    f"exported graph differs from PyTorch by {diff:.3g} (> {bound:.3g}) at input "
                    f"shape {tuple(inputs[0].shape)}: some op did not export faithfully"
                )
            worst = max(worst, diff)
    return [tuple(inputs[0].shape) for inputs in examples], worst


def onnx_runner(path: str | os.PathLike):
    """A function running an ONNX file in onnxruntime (CPU): tuple of tensors -> ndarray.

    Inputs are checked first against the file's metadata (minimum size, mask shape, a
    valid pixel per mask), so a bad input is a ``ValueError`` saying what was expected;
    the graph itself refuses the same inputs (see :mod:`globalpool.deploy.guards`)."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ImportError(
            "running ONNX files needs onnxruntime: pip install 'globalpool[export]'"
        ) from err
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    meta = read_export_metadata(path)
    min_size = tuple(meta.get("min_input_size") or (1, 1))

    def run(inputs):
        if len(inputs) != len(names):
            raise ValueError(f"this ONNX file takes inputs {names}, got {len(inputs)} tensor(s)")
        MinInputSize(min_size)(inputs[0])
        if len(inputs) == 2:
            MaskHasValidPixel()(MaskMatchesImage()(*inputs))
        feed = {name: t.detach().cpu().numpy() for name, t in zip(names, inputs, strict=True)}
        return session.run(None, feed)[0]

    return run


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    mask: bool = False,
    input_size=None,
    opset: int = 17,
    exporter: str = "torchscript",
    verify: bool = True,
    tolerance: float = 1e-4,
) -> ExportResult:
    """Write ``model`` as an ONNX file, verified in onnxruntime.

    Args:
        model: a Classifier (any nn.Module with ``head`` and ``forward_features`` for
            ``mask=True``); set to eval mode.
        path: the .onnx file to write (atomically).
        mask: add a second input ``mask`` (N, H, W) bool; pooling heads only.
        input_size: (H, W) of the trace example; defaults to ``model.input_size``.
        opset: ONNX opset version, within :func:`opset_range` of ``exporter``.
        exporter: ``"torchscript"`` (torch.onnx.export(dynamo=False)) or ``"dynamo"``.
        verify: reload the file in onnxruntime and compare with PyTorch at three input
            shapes; RuntimeError on a difference above ``tolerance`` (scaled by the logit
            magnitude when that exceeds 1).

    Returns:
        An :class:`ExportResult`.

    Example:
        >>> from globalpool.models import create_model
        >>> res = export_onnx(create_model("fastnet", 10), "/tmp/fastnet.onnx")
        >>> res.dynamic_axes["image"]
        {0: 'batch', 2: 'height', 3: 'width'}
    """
    import onnx

    path = Path(path)
    if exporter not in ("torchscript", "dynamo"):
        raise ValueError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}")
    check_opset(opset, exporter)
    module, names, axes, examples, fixed = _prepare(model, mask, input_size)
    meta = _metadata(model, "onnx", mask, not fixed, names)

    with warnings.catch_warnings():
        # Tracer and deprecation chatter: correctness is checked by `verify` instead.
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            buffer = io.BytesIO()
            torch.onnx.export(
                module,
                examples[0],
                buffer,
                dynamo=False,
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
            )
            proto = onnx.load_from_string(buffer.getvalue())
        else:
            proto = _dynamo_export(module, examples[0], names, axes, opset)

    graph_inputs = [i.name for i in proto.graph.input]
    if graph_inputs != names:  # the exporter prunes inputs the graph never reads
        raise RuntimeError(
            f"the exported graph takes inputs {graph_inputs}, expected {names}: the "
            f"{getattr(model, 'pool_name', None)!r} pool ignored the mask"
        )
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))

    result = ExportResult(path, "onnx", names, axes)
    if verify:
        result.verified_shapes, result.max_abs_diff = _compare(
            onnx_runner(path), module, examples, tolerance
        )
    return result


def _dynamo_export(module, example, names, axes, opset):
    try:
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError("exporter='dynamo' needs the onnxscript package") from err
    from torch.export import Dim

    # Positional (a tuple): forward's argument names need not be the graph's input names.
    dynamic_shapes = tuple({axis: Dim.DYNAMIC for axis in axes.get(name, {})} for name in names)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            tuple(example),
            dynamo=True,
            input_names=names,
            output_names=["logits"],
            dynamic_shapes=dynamic_shapes,
            opset_version=max(opset, 18),  # the dynamo exporter's lowest
            verbose=False,
        )
    return program.model_proto


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    mask: bool = False,
    input_size=None,
    verify: bool = True,
    tolerance: float = 1e-4,
) -> ExportResult:
    """Write ``model`` as a traced TorchScript archive, reloaded and verified.

    Tracing (not scripting) so any pool written in plain PyTorch exports; shape reads
    (``x.shape``) are recorded as ops, and ``verify`` checks the archive at three input
    shapes against eager PyTorch. Arguments as :func:`export_onnx`.

    Example:
        >>> from globalpool.models import create_model
        >>> res = export_torchscript(create_model("fastnet", 10), "/tmp/fastnet.pt")
        >>> res.inputs
        ['image']
    """
    path = Path(path)
    module, names, axes, examples, fixed = _prepare(model, mask, input_size)
    meta = _metadata(model, "torchscript", mask, not fixed, names)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, examples[0], check_trace=False)
    extra = {TORCHSCRIPT_EXTRA: json.dumps(meta)}
    with atomic_path(path) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files=extra)

    result = ExportResult(path, "torchscript", names, axes)
    if verify:
        loaded = torch.jit.load(str(path), map_location="cpu")
        result.verified_shapes, result.max_abs_diff = _compare(
            lambda inputs: loaded(*inputs), module, examples, tolerance
        )
    return result


def export_model(model: nn.Module, path, format: str = "onnx", **kwargs) -> ExportResult:
    """Dispatch to :func:`export_onnx` (``format="onnx"``) or :func:`export_torchscript`."""
    if format == "onnx":
        return export_onnx(model, path, **kwargs)
    if format == "torchscript":
        return export_torchscript(model, path, **kwargs)
    raise ValueError(f"unknown export format {format!r}; expected 'onnx' or 'torchscript'")


def read_export_metadata(path: str | os.PathLike) -> dict:
    """The globalpool metadata (classes, mean, std, inputs...) stored in an exported file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such exported model: {str(path)!r}")
    if path.suffix == ".onnx":
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        for entry in proto.metadata_props:
            if entry.key == METADATA_KEY:
                return json.loads(entry.value)
        raise ValueError(f"{str(path)!r} has no {METADATA_KEY!r} metadata")
    extra = {TORCHSCRIPT_EXTRA: ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    if not extra[TORCHSCRIPT_EXTRA]:
        raise ValueError(f"{str(path)!r} has no {TORCHSCRIPT_EXTRA} metadata")
    return json.loads(extra[TORCHSCRIPT_EXTRA])
