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


@dataclass
class TrainConfig:
    """Everything that defines one training run.

    Model:
        model: a name from ``globalpool.models.list_models()``.
        head: ``fc``, ``classmap`` or ``pool-linear``; None keeps the model's default.
        pool: a name from ``globalpool.pool.list_pools()``; None keeps the default.
        head_kwargs: extra keyword arguments for the head (``dropout``, ``kernel_size``...).
        pool_kwargs: extra keyword arguments for the pool (``p`` for gem/lp, ``r`` for lse).
        model_kwargs: extra keyword arguments for ``create_model`` (``{"pretrained":
            true}`` for the ImageNet weights of a ``torchvision:``/``timm:`` model).

    Fine-tuning (any model: the backbone is ``Classifier.backbone``, the rest is the head):
        freeze_backbone: train the head only. The backbone's parameters get
            ``requires_grad=False`` (left out of the optimiser) and the backbone stays in
            eval mode throughout, so its batch-norm running statistics and its dropout
            are those of the network as given (a linear probe of fixed features).
        backbone_lr_scale: the backbone's parameters train at ``lr * backbone_lr_scale``
            (the head at ``lr``) through the whole schedule; 1.0 = one learning rate.
            Must stay 1.0 with ``freeze_backbone``.

    Data:
        dataset: a name from ``globalpool.data.list_datasets()``.
        dataset_kwargs: keyword arguments for ``load_dataset``.
        val_fraction: fraction of the training set held out (stratified, seeded) for
            validation, in [0, 0.9]. 0 trains on every training image (the final run
            of settings chosen on validation): no validation metrics (None), and the
            ``best`` checkpoint is the last epoch's.
        augment: random crop + flip (+ cutout) on training batches.
        crop_padding, flip, alternate_flip, cutout: the augmentation settings (see
            ``globalpool.data.Augment``); ``alternate_flip`` mirrors each image in every
            other epoch instead of at random (airbench's derandomised flip).

    Optimisation:
        epochs, batch_size (the global batch: with N processes each gets batch_size / N),
        eval_batch_size (None: 2 * batch_size).
        optimizer: ``sgd`` (momentum, optionally Nesterov) or ``adamw``.
        lr: peak learning rate. momentum, nesterov: SGD only. betas: AdamW only.
        weight_decay: applied to weights of rank >= 2 only when ``decay_norm_and_bias``
            is False (biases and normalisation parameters are not decayed).
        bias_lr_scale: biases and normalisation parameters (rank 1) train at
            ``lr * bias_lr_scale``; their weight decay (with ``decay_norm_and_bias``) is
            divided by it, so each step decays them as much as the weights.
        schedule: ``cosine`` (linear warm-up, then cosine to ``lr * final_lr_ratio``),
            ``linear`` (linear warm-up, then linear to ``lr * final_lr_ratio``),
            ``onecycle`` (warm-up from ``lr / 25``, then cosine to ``lr / 1e4``) or
            ``constant`` (warm-up, then flat).
        warmup_epochs: length of the linear warm-up, in epochs (may be fractional).
        label_smoothing, grad_clip (max global gradient norm; 0 = off).
        lookahead_every: average the weights every this many steps and restart from the
            average (see :mod:`globalpool.train.lookahead`); 0 = off.
        lookahead_decay: the averaging decay reached at the end of training.

    Evaluation:
        tta: test-time augmentation for the reported ``test_acc_tta`` (``none``, ``flip``,
            ``flip-translate``; see :mod:`globalpool.train.tta`). ``test_acc`` is always
            the plain single-view accuracy.
        test_curve: also measure the (single-view) test accuracy after every epoch, for
            a time-to-accuracy curve. For reporting only: nothing reads it to steer
            training, and its time is left out of ``train_clock_s``.

    Speed:
        amp: ``none``, ``auto`` (bf16 where the device computes it natively, see
            :func:`globalpool.machine.native_bf16`, float32 otherwise; the choice is
            printed and recorded as ``amp_used`` in the summary), ``bf16`` (CPU or CUDA)
            or ``fp16`` (CUDA, with a GradScaler).
        channels_last, compile (``torch.compile`` of the whole model; the pools join its
        graph), compile_pool (only the pooling operators through ``torch.compile``, the
        rest eager: ``globalpool.pool.compile_pools``, bench_pool.py's compiled column),
        device ``auto|cpu|cuda``.

    Run:
        seed: fixes data order, augmentation, initialisation and dropout.
        out_dir: the run directory. quiet: no progress bars. tensorboard: write event
        files when ``tensorboard`` is installed.
        stop_after_epoch: stop (as if killed) after this epoch; for testing ``--resume``.

    Example:
        >>> cfg = TrainConfig(model="fastnet", head="classmap", pool="max", epochs=2)
        >>> TrainConfig.from_json(cfg.to_json()) == cfg
        True
    """

    model: str = "fastnet"
    head: str | None = None
    pool: str | None = None
    head_kwargs: dict[str, Any] = field(default_factory=dict)
    pool_kwargs: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    freeze_backbone: bool = False
    backbone_lr_scale: float = 1.0

    dataset: str = "shapes"
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    val_fraction: float = 0.1
    augment: bool = True
    crop_padding: int = 4
    flip: bool = True
    alternate_flip: bool = False
    cutout: int = 0

    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int | None = None
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = False
    bias_lr_scale: float = 1.0
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    final_lr_ratio: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float = 0.0
    lookahead_every: int = 0
    lookahead_decay: float = 0.774

    tta: str = "none"
    test_curve: bool = False

    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    compile_pool: bool = False
    device: str = "auto"

    seed: int = 0
    out_dir: str = "runs/run"
    quiet: bool = False
    tensorboard: bool = True
    stop_after_epoch: int | None = None

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
