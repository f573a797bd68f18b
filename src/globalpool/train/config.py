"""The training configuration: one dataclass, saved as ``config.json`` in every run.

A run is fully described by its :class:`TrainConfig`; giving the saved file back
(``globalpool train --config runs/x/config.json``) repeats the run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "linear", "onecycle", "constant")
AMP_MODES = ("none", "auto", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
TTA_MODES = ("none", "flip", "flip-translate")


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric setting: stated once, for validation and for help.

    ``kind`` int or float; ``low`` (excluded with ``low_open``) to ``high``; ``optional``:
    None is allowed too.
    """

    kind: type
    low: float
    high: float = math.inf
    low_open: bool = False
    optional: bool = False

    def text(self) -> str:
        """``'an integer >= 1'``, ``'a number in [0, 0.9]'``, ``'a number > 0'``."""
        what = "an integer" if self.kind is int else "a number"
        if self.high != math.inf:
            return f"{what} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        return f"{what} {'>' if self.low_open else '>='} {self.low:g}"

    def check(self, name: str, value) -> None:
        """Raise TypeError/ValueError naming ``name`` when ``value`` is outside the range."""
        if self.optional and value is None:
            return
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer; got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number; got {type(value).__name__} {value!r}")
        if not math.isfinite(value) or value < self.low or (self.low_open and value == self.low):
            bound = f"> {self.low}" if self.low_open else f">= {self.low}"
            finite = "" if self.kind is int else "finite and "
            raise ValueError(f"{name} must be {finite}{bound}; got {value!r}")
        if value > self.high:
            raise ValueError(f"{name} must be <= {self.high}; got {value!r}")


# Every numeric TrainConfig field's range: TrainConfig.validate and the command line's
# --help read it here.
RANGES: dict[str, Range] = {
    "backbone_lr_scale": Range(float, 0.0, low_open=True),
    "val_fraction": Range(float, 0.0, 0.9),
    "crop_padding": Range(int, 0),
    "cutout": Range(int, 0),
    "epochs": Range(int, 1),
    "batch_size": Range(int, 1),
    "eval_batch_size": Range(int, 1, optional=True),
    "lr": Range(float, 0.0, low_open=True),
    "momentum": Range(float, 0.0, 1.0),
    "weight_decay": Range(float, 0.0),
    "bias_lr_scale": Range(float, 0.0, low_open=True),
    "warmup_epochs": Range(float, 0.0),
    "final_lr_ratio": Range(float, 0.0, 1.0),
    "label_smoothing": Range(float, 0.0, 1.0),
    "grad_clip": Range(float, 0.0),
    "lookahead_every": Range(int, 0),
    "lookahead_decay": Range(float, 0.0, 0.999),
    "seed": Range(int, 0),
    "stop_after_epoch": Range(int, 1, optional=True),
}


def setting_docs() -> dict[str, dict[str, Any]]:
    """Every :class:`TrainConfig` field -> ``{"group", "doc", "default"}``, in
    declaration order: the one documentation of the settings."""
    docs = {}
    for f in dataclasses.fields(TrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        docs[f.name] = {**f.metadata, "default": default}
    return docs


def _setting(group: str, default: Any, doc: str) -> Any:
    """A TrainConfig field with its documentation, written here once: ``--help``, the API
    reference's settings table and :func:`setting_docs` all read it from the field's
    metadata. Mutable defaults (dicts) become a factory."""
    metadata = {"group": group, "doc": doc}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything that defines one training run.

    Each field is documented where it is declared (its ``doc`` metadata, grouped as
    Model, Fine-tuning, Data, Optimisation, Evaluation, Speed and Run):
    ``globalpool train --help`` shows it beside the flag, and :func:`setting_docs` returns
    the table the API reference prints. Numeric fields' ranges are in :data:`RANGES`.

    Example:
        >>> cfg = TrainConfig(model="fastnet", head="classmap", pool="max", epochs=2)
        >>> TrainConfig.from_json(cfg.to_json()) == cfg
        True
        >>> setting_docs()["final_lr_ratio"]["doc"]
        'cosine and linear schedules: the final learning rate as a fraction of lr'
    """

    model: str = _setting(
        "Model",
        "fastnet",
        "architecture: a name that globalpool models lists (list_models()), or "
        "torchvision:NAME / timm:NAME",
    )
    head: str | None = _setting(
        "Model", None, "head kind: fc, classmap or pool-linear (None: the model's default)"
    )
    pool: str | None = _setting(
        "Model",
        None,
        "global pool of the head: a name that globalpool pools lists (None: the model's default)",
    )
    head_kwargs: dict[str, Any] = _setting(  # noqa: RUF009 (a field with a factory)
        "Model",
        {},
        "JSON object of head arguments (dropout, kernel_size...), e.g. '{\"dropout\": 0.5}'",
    )
    pool_kwargs: dict[str, Any] = _setting(  # noqa: RUF009 (a field with a factory)
        "Model",
        {},
        "JSON object of pool arguments (p for gem and lp, r for lse...), e.g. '{\"p\": 3}'",
    )
    model_kwargs: dict[str, Any] = _setting(  # noqa: RUF009 (a field with a factory)
        "Model",
        {},
        "JSON object of architecture arguments, e.g. "
        "'{\"widths\": [64,256,256]}'; '{\"pretrained\": true}' for the ImageNet weights of a "
        "torchvision:/timm: model",
    )
    freeze_backbone: bool = _setting(
        "Fine-tuning",
        False,
        "train the head only: the backbone's parameters are left out of the optimiser "
        "and the backbone stays in eval mode, so its batch-norm statistics and dropout "
        "are those of the network as given (a linear probe of fixed features)",
    )
    backbone_lr_scale: float = _setting(
        "Fine-tuning",
        1.0,
        "backbone learning rate = lr x this (the head trains at lr) through the whole "
        "schedule; must stay 1.0 with freeze_backbone",
    )

    dataset: str = _setting(
        "Data",
        "shapes",
        "dataset name: fashion_canvas, cifar_canvas, shapes, digits, cifar10, mnist, "
        "fashion_mnist or folder",
    )
    dataset_kwargs: dict[str, Any] = _setting(  # noqa: RUF009 (a field with a factory)
        "Data", {}, "JSON object of dataset options, e.g. '{\"n_train\": 2000}'"
    )
    val_fraction: float = _setting(
        "Data",
        0.1,
        "fraction of the training set held out (stratified, seeded) for validation; 0 "
        "trains on every training image (no validation metrics; the best checkpoint is "
        "the last epoch's)",
    )
    augment: bool = _setting("Data", True, "random crop + flip (+ cutout) of training batches")
    crop_padding: int = _setting("Data", 4, "padding of the random crop, pixels")
    flip: bool = _setting("Data", True, "random horizontal flips (with augment)")
    alternate_flip: bool = _setting(
        "Data",
        False,
        "mirror each image in every other epoch instead of at random (airbench's "
        "derandomised flip)",
    )
    cutout: int = _setting("Data", 0, "cutout square side, pixels (0 = off)")

    epochs: int = _setting("Optimisation", 10, "number of epochs")
    batch_size: int = _setting(
        "Optimisation", 128, "global batch size (split across processes under torchrun)"
    )
    eval_batch_size: int | None = _setting(
        "Optimisation", None, "batch size of validation and test (None: 2 x batch_size)"
    )
    optimizer: str = _setting("Optimisation", "sgd", "sgd (momentum, Nesterov by default) or adamw")
    lr: float = _setting("Optimisation", 0.05, "peak learning rate")
    momentum: float = _setting("Optimisation", 0.9, "SGD momentum")
    nesterov: bool = _setting("Optimisation", True, "Nesterov momentum for SGD")
    betas: tuple[float, float] = _setting("Optimisation", (0.9, 0.999), "AdamW betas")
    weight_decay: float = _setting(
        "Optimisation",
        5e-4,
        "weight decay, of weights of rank >= 2 only unless decay_norm_and_bias",
    )
    decay_norm_and_bias: bool = _setting(
        "Optimisation", False, "also decay biases and normalisation parameters"
    )
    bias_lr_scale: float = _setting(
        "Optimisation",
        1.0,
        "biases and normalisation parameters (rank 1) train at lr x this; their weight "
        "decay is divided by it, so each step decays them as much as the weights",
    )
    schedule: str = _setting(
        "Optimisation",
        "cosine",
        "learning-rate schedule: cosine (warm-up, then cosine to lr x final_lr_ratio), "
        "linear (warm-up, then a straight line to lr x final_lr_ratio), onecycle (warm-up "
        "from lr / 25, then cosine to lr / 1e4) or constant (warm-up, then flat)",
    )
    warmup_epochs: float = _setting(
        "Optimisation", 1.0, "linear warm-up length in epochs (may be fractional)"
    )
    final_lr_ratio: float = _setting(
        "Optimisation",
        0.0,
        "cosine and linear schedules: the final learning rate as a fraction of lr",
    )
    label_smoothing: float = _setting("Optimisation", 0.0, "label smoothing of the training loss")
    grad_clip: float = _setting(
        "Optimisation", 0.0, "clip the global gradient norm to this value (0 = off)"
    )
    lookahead_every: int = _setting(
        "Optimisation",
        0,
        "average the weights every N steps and restart from the average (0 = off; "
        "globalpool.train.lookahead)",
    )
    lookahead_decay: float = _setting(
        "Optimisation", 0.774, "the weight-averaging decay reached at the end of training"
    )

    tta: str = _setting(
        "Evaluation",
        "none",
        "test-time augmentation of the reported test_acc_tta: none, flip or flip-translate "
        "(test_acc is always the plain single view)",
    )
    test_curve: bool = _setting(
        "Evaluation",
        False,
        "also measure the single-view test accuracy after every epoch, for a "
        "time-to-accuracy curve (reported only: nothing steers by it, and its time is "
        "left out of train_clock_s)",
    )

    amp: str = _setting(
        "Speed",
        "none",
        "mixed precision: none, auto (bf16 where the device computes it natively, else "
        "float32, an instruction-set cap such as ONEDNN_MAX_CPU_ISA=AVX2 counting as the "
        "CPU it emulates; recorded as amp_used), bf16 (CPU or CUDA) or fp16 (CUDA)",
    )
    channels_last: bool = _setting("Speed", False, "channels-last memory format")
    compile: bool = _setting(
        "Speed", False, "torch.compile the whole model (the pools join its graph)"
    )
    compile_pool: bool = _setting(
        "Speed",
        False,
        "torch.compile the pooling operators only, the rest eager (globalpool.pool.compile_pools)",
    )
    device: str = _setting("Speed", "auto", "auto, cpu or cuda")

    seed: int = _setting("Run", 0, "seed of data order, augmentation, initialisation and dropout")
    out_dir: str = _setting("Run", "runs/run", "run directory to write")
    quiet: bool = _setting("Run", False, "no progress bars and no epoch lines")
    tensorboard: bool = _setting(
        "Run", True, "write TensorBoard event files (when tensorboard is installed)"
    )
    stop_after_epoch: int | None = _setting(
        "Run", None, "stop (as if killed) after this epoch: to try --resume"
    )

    # ------------------------------------------------------------------ checks
    def validate(self) -> TrainConfig:
        """Raise ValueError/TypeError naming the first bad field; return self."""

        def choice(name: str, options: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in options:
                raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}")

        for name in ("model", "dataset", "out_dir"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"{name} must be a non-empty string; got {getattr(self, name)!r}")
        for name in ("head", "pool"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a string or None; got {getattr(self, name)!r}")
        for name in ("head_kwargs", "pool_kwargs", "model_kwargs", "dataset_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be a dict; got {getattr(self, name)!r}")
        choice("optimizer", OPTIMIZERS)
        choice("schedule", SCHEDULES)
        choice("amp", AMP_MODES)
        choice("device", DEVICES)
        choice("tta", TTA_MODES)
        for name, allowed in RANGES.items():
            allowed.check(name, getattr(self, name))
        if self.alternate_flip and not (self.augment and self.flip):
            raise ValueError("alternate_flip needs flips: leave --flip and --augment on")
        if not isinstance(self.freeze_backbone, bool):
            raise TypeError(f"freeze_backbone must be true or false; got {self.freeze_backbone!r}")
        if self.freeze_backbone and self.backbone_lr_scale != 1.0:
            raise ValueError(
                f"backbone_lr_scale ({self.backbone_lr_scale}) has no effect with "
                "freeze_backbone (the backbone does not train); leave it at 1.0"
            )
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1); got {self.betas!r}")
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) must not exceed epochs ({self.epochs})"
            )
        if self.nesterov and self.optimizer == "sgd" and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0 (set --no-nesterov or --momentum)")
        return self

    # ------------------------------------------------------------ round trip
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict such as :meth:`to_dict` gives; unknown keys are an error."""
        if not isinstance(data, dict):
            raise TypeError(f"a training config must be a JSON object; got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown training config key(s) {', '.join(map(repr, unknown))}; "
                f"expected some of: {', '.join(sorted(known))}"
            )
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (unknown names are a ValueError)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON, atomically."""
        from globalpool.atomic import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a config file written by :meth:`save` (or by hand)."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"training config file not found: {path}")
        with open(path, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON: {err}") from None
        return cls.from_dict(data)
