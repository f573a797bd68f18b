"""At what size an image is fed to a model: the one scale policy of predict, cam,
features and export.

By default every image goes in at the scale the model was trained at: an FC-head model
(``head.fixed_size``) at exactly ``model.input_size``, a pooling-head model with its
shorter side resized to the shorter side of ``model.input_size`` (aspect kept). A pooling
head accepts any size, but that is not scale invariance (BENCHMARKS.md, "Scale").
"""

from __future__ import annotations

from torch import nn

from globalpool.models.memory import check_fits_memory

__all__ = [
    "MAX_NATIVE_PIXELS", "check_in_chans", "input_channels", "is_fixed_size", "size_pair",
    "target_size", "warn_far_from_training_scale",
]  # fmt: skip


def is_fixed_size(model: nn.Module) -> bool:
    """Whether ``model`` takes only its training input size (an FC head): the
    ``Classifier.fixed_size`` answer, or its head's for other modules with a ``head``."""
    fixed = getattr(model, "fixed_size", None)
    if fixed is None:
        fixed = getattr(getattr(model, "head", None), "fixed_size", False)
    return bool(fixed)


# The largest image fed at its native size (a 4096 x 4096 image): the activations of a
# forward pass grow with the pixels (a 10,000 x 10,000 PNG took 12 GB with an 18k-parameter
# model). Larger images are refused with a message; the default policy resizes them.
MAX_NATIVE_PIXELS = 4096 * 4096
# Native sizes this far from the training scale (ratio of shorter sides) get a warning.
_SCALE_WARN = 1.5


def check_in_chans(in_chans) -> int:
    """``in_chans`` when it is a positive int (not a bool); a ValueError otherwise."""
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
    return in_chans


def input_channels(model: nn.Module) -> int:
    """The channels ``model`` takes: its ``in_chans`` (a Classifier), else the
    ``in_chans`` of its ``model_args``, else 3: what export and the masked wrapper probe
    a plain nn.Module with."""
    if getattr(model, "in_chans", None):
        return int(model.in_chans)
    args = getattr(model, "model_args", None) or {}
    return int(args.get("in_chans", 3))


def size_pair(value, what: str) -> tuple[int, int] | None:
    """``(H, W)`` from an int or a pair of positive ints (None stays None); a ValueError
    naming ``what`` otherwise. The one size parser of models, sizing and export."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an int or (H, W), got {value!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return h, w


def target_size(
    model: nn.Module, image_size: tuple[int, int], size=None, *, grad: bool = False
) -> tuple[int, int]:
    """The (H, W) an image of ``image_size`` is fed to ``model`` at.

    Args:
        model: a Classifier.
        image_size: (H, W) of the image.
        size: None (the training scale: FC heads ``model.input_size``, pooling heads the
            shorter side resized to that of ``model.input_size``, aspect kept; a model with
            no ``input_size`` keeps the image size), ``"native"`` (pooling heads: the
            image's own size, at most :data:`MAX_NATIVE_PIXELS`, scaled up, aspect kept,
            where it is below ``model.min_input_size``), an int S (pooling heads: shorter
            side resized to S, aspect kept) or (H, W) (exact size).
        grad: whether a backward pass follows (Grad-CAM): the memory check then counts
            every layer's output as kept.

    Raises:
        ValueError: ``size`` differs from an FC-head model's trained size, the result is
            smaller than ``model.min_input_size``, a native size is too large, or one
            image at the result would not fit in the memory available
            (:func:`globalpool.models.memory.check_fits_memory`).
    """
    trained = size_pair(getattr(model, "input_size", None), "model.input_size")
    minimum = size_pair(getattr(model, "min_input_size", None) or 1, "model.min_input_size")
    if is_fixed_size(model):
        if size not in (None, "native") and size_pair(size, "size") != trained:
            raise ValueError(
                f"this model has a fixed-size FC head trained at {trained}; it cannot take "
                f"size {size!r} (leave size unset: images are resized to {trained})"
            )
        return trained
    if size is None:
        size = min(trained) if trained is not None else "native"
    if size == "native":
        h, w = (int(s) for s in image_size)
        if h * w > MAX_NATIVE_PIXELS:
            raise ValueError(
                f"image of size {(h, w)} has {h * w:,} pixels, more than the "
                f"{MAX_NATIVE_PIXELS:,} fed at native size; leave size unset (training "
                "scale) or pass a smaller size"
            )
        # below the minimum: scaled up just enough, aspect kept (the image's own scale
        # cannot be fed, and refusing a small image would make native useless for it)
        scale = max(1.0, minimum[0] / h, minimum[1] / w)
        out = (max(minimum[0], round(h * scale)), max(minimum[1], round(w * scale)))
    elif isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        h, w = image_size
        scale = size / min(h, w)
        out = (max(1, round(h * scale)), max(1, round(w * scale)))
    elif isinstance(size, str):
        raise ValueError(f"size must be None, 'native', an int or (H, W); got {size!r}")
    else:
        out = size_pair(size, "size")
    if out[0] < minimum[0] or out[1] < minimum[1]:
        raise ValueError(
            f"image of size {tuple(image_size)} would be fed at {out}, smaller than the "
            f"model's minimum input size {minimum}; pass a larger size"
        )
    in_chans = getattr(model, "in_chans", None)
    if in_chans is not None:
        param = next(model.parameters(), None)
        check_fits_memory(
            model, int(in_chans), out, grad=grad,
            device=param.device if param is not None else "cpu",
        )  # fmt: skip
    return out


def warn_far_from_training_scale(model: nn.Module, sizes) -> None:
    trained = size_pair(getattr(model, "input_size", None), "model.input_size")
    if trained is None:
        return
    ratios = [min(hw) / min(trained) for hw in sizes]
    far = [r for r in ratios if not 1 / _SCALE_WARN <= r <= _SCALE_WARN]
    if far:
        import warnings

        warnings.warn(
            f"{len(far)} of {len(ratios)} image(s) are fed at native size {min(far):.2g}x to "
            f"{max(far):.2g}x the training scale {trained}: a pooling head accepts the size "
            "but is not scale invariant (accuracy can collapse); leave size unset to resize "
            "to the training scale",
            stacklevel=3,
        )
