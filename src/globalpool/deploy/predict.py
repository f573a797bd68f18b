"""``predict``: images in, top-k classes with probabilities out.

Scale policy: by default every image is resized to the scale the model was trained at: an
FC-head model (``head.fixed_size``) to exactly ``model.input_size``, a pooling-head model
so that its shorter side equals the shorter side of ``model.input_size`` (aspect kept). A
pooling head accepts any size, but that is not scale invariance: objects drawn at twice
the training scale can be misread wholesale (the guide's "any input size" section). Ask for
``size="native"`` to feed images at their own size (a warning says when that is far from
the training scale), or for a shorter side ``S`` / an exact ``(H, W)``. Images of equal
size are batched together, so no padding ever changes a prediction; results come back in
input order.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from globalpool.deploy.images import resize_image, to_image_tensors

__all__ = ["MAX_NATIVE_PIXELS", "predict", "predict_proba", "target_size"]

# The largest image fed at its native size (a 4096 x 4096 image): the activations of a
# forward pass grow with the pixels (a 10,000 x 10,000 PNG took 12 GB with an 18k-parameter
# model). Larger images are refused with a message; the default policy resizes them.
MAX_NATIVE_PIXELS = 4096 * 4096
# Native sizes this far from the training scale (ratio of shorter sides) get a warning.
_SCALE_WARN = 1.5


def _pair(value, what: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be an int or (H, W), got {value!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return h, w


def target_size(model: nn.Module, image_size: tuple[int, int], size=None) -> tuple[int, int]:
    """The (H, W) an image of ``image_size`` is fed to ``model`` at.

    Args:
        model: a Classifier.
        image_size: (H, W) of the image.
        size: None (the training scale: FC heads ``model.input_size``, pooling heads the
            shorter side resized to that of ``model.input_size``, aspect kept; a model with
            no ``input_size`` keeps the image size), ``"native"`` (pooling heads: the
            image's own size, at most :data:`MAX_NATIVE_PIXELS`), an int S (pooling heads:
            shorter side resized to S, aspect kept) or (H, W) (exact size).

    Raises:
        ValueError: ``size`` differs from an FC-head model's trained size, the result is
            smaller than ``model.min_input_size``, or a native size is too large.
    """
    trained = _pair(getattr(model, "input_size", None), "model.input_size")
    fixed = bool(getattr(model.head, "fixed_size", False))
    if fixed:
        if size not in (None, "native") and _pair(size, "size") != trained:
            raise ValueError(
                f"this model has a fixed-size FC head trained at {trained}; it cannot take "
                f"size {size!r} (leave size unset: images are resized to {trained})"
            )
        return trained
    if size is None:
        size = min(trained) if trained is not None else "native"
    if size == "native":
        out = tuple(image_size)
        if out[0] * out[1] > MAX_NATIVE_PIXELS:
            raise ValueError(
                f"image of size {out} has {out[0] * out[1]:,} pixels, more than the "
                f"{MAX_NATIVE_PIXELS:,} fed at native size; leave size unset (training "
                "scale) or pass a smaller size"
            )
    elif isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        h, w = image_size
        scale = size / min(h, w)
        out = (max(1, round(h * scale)), max(1, round(w * scale)))
    elif isinstance(size, str):
        raise ValueError(f"size must be None, 'native', an int or (H, W); got {size!r}")
    else:
        out = _pair(size, "size")
    minimum = _pair(getattr(model, "min_input_size", None) or 1, "model.min_input_size")
    if out[0] < minimum[0] or out[1] < minimum[1]:
        raise ValueError(
            f"image of size {tuple(image_size)} would be fed at {out}, smaller than the "
            f"model's minimum input size {minimum}; pass a larger size"
        )
    return out


def _warn_far_from_training_scale(model: nn.Module, sizes) -> None:
    trained = _pair(getattr(model, "input_size", None), "model.input_size")
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


def _channels(model: nn.Module, mean) -> int:
    if getattr(model, "in_chans", None):
        return int(model.in_chans)
    args = getattr(model, "model_args", None) or {}
    if "in_chans" in args:
        return int(args["in_chans"])
    return len(mean) if mean is not None else 3


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    images,
    *,
    size=None,
    batch_size: int = 64,
    mean=None,
    std=None,
) -> torch.Tensor:
    """Class probabilities (softmax of the logits) for each image.

    Args:
        model: a Classifier; run in eval mode on its own device.
        images: see :func:`globalpool.deploy.images.to_image_tensors`.
        size: see :func:`target_size`.
        batch_size: images per forward pass.
        mean, std: per-channel normalisation in [0, 1] units; default ``model.mean`` /
            ``model.std`` (set by :func:`globalpool.load`), else no normalisation.

    Returns:
        float32 (N_images, num_classes) on the CPU, rows in input order.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    mean = getattr(model, "mean", None) if mean is None else mean
    std = getattr(model, "std", None) if std is None else std
    tensors = to_image_tensors(images, _channels(model, mean))
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    shift = torch.tensor(mean or 0.0, dtype=torch.float32).view(-1, 1, 1)
    scale = torch.tensor(std or 1.0, dtype=torch.float32).view(-1, 1, 1)

    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    fed: list[torch.Tensor] = []
    for i, image in enumerate(tensors):
        hw = target_size(model, tuple(image.shape[-2:]), size)
        fed.append(resize_image(image, hw))
        groups[hw].append(i)
    if size == "native" and not getattr(model.head, "fixed_size", False):
        _warn_far_from_training_scale(model, groups)

    was_training = model.training
    model.eval()
    try:
        out: torch.Tensor | None = None
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                index = members[start : start + batch_size]
                batch = (torch.stack([fed[i] for i in index]) - shift) / scale
                probs = model(batch.to(device=device, dtype=dtype)).float().softmax(-1).cpu()
                if out is None:
                    out = torch.empty(len(tensors), probs.shape[1])
                out[index] = probs
    finally:
        model.train(was_training)
    return out


def predict(
    model: nn.Module,
    images,
    *,
    topk: int = 5,
    size=None,
    batch_size: int = 64,
    classes=None,
    mean=None,
    std=None,
) -> list[list[dict]]:
    """Top-k classes with probabilities for each image.

    Args:
        model: a Classifier (from :func:`globalpool.load`, which sets classes/mean/std).
        images: one image or a list: file paths, PIL images, uint8 numpy (H, W, C) /
            (H, W), tensors (C, H, W) / (N, C, H, W) uint8 or float in [0, 1].
        topk: how many classes per image (capped at the number of classes).
        size, batch_size, mean, std: see :func:`predict_proba`.
        classes: class names; default ``model.classes``, else "0", "1", ...

    Returns:
        One list per image, best first, of ``{"class": name, "index": k, "prob": p}``.

    Example:
        >>> import globalpool, numpy as np  # doctest: +SKIP
        >>> model = globalpool.load("runs/x")  # doctest: +SKIP
        >>> model.predict(np.zeros((32, 32, 3), np.uint8), topk=2)  # doctest: +SKIP
        [[{'class': 'cat', 'index': 3, 'prob': 0.61}, {'class': 'dog', 'index': 5, ...}]]
    """
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f"topk must be a positive int, got {topk!r}")
    probs = predict_proba(model, images, size=size, batch_size=batch_size, mean=mean, std=std)
    names = classes if classes is not None else getattr(model, "classes", None)
    if names is None:
        names = [str(k) for k in range(probs.shape[1])]
    if len(names) != probs.shape[1]:
        raise ValueError(f"{len(names)} class names for a model with {probs.shape[1]} outputs")
    values, indices = probs.topk(min(topk, probs.shape[1]), dim=1)
    return [
        [
            {"class": str(names[k]), "index": int(k), "prob": float(p)}
            for p, k in zip(row_p.tolist(), row_k.tolist(), strict=True)
        ]
        for row_p, row_k in zip(values, indices, strict=True)
    ]
