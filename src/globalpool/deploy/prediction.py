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

from globalpool.deploy.images import resize_image, to_image_tensors
from globalpool.models.classifier import Classifier
from globalpool.models.sizing import (
    MAX_NATIVE_PIXELS,
    is_fixed_size,
    target_size,
    warn_far_from_training_scale,
)

__all__ = ["MAX_NATIVE_PIXELS", "predict", "predict_proba", "target_size"]


@torch.no_grad()
def predict_proba(
    model: Classifier,
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
            ``model.std`` (a loaded run's; None: no normalisation).

    Returns:
        float32 (N_images, num_classes) on the CPU, rows in input order.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    _check_classifier(model)
    mean = model.mean if mean is None else mean
    std = model.std if std is None else std
    tensors = to_image_tensors(images, model.in_chans)
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
    if size == "native" and not is_fixed_size(model):
        warn_far_from_training_scale(model, groups)

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


def _check_classifier(model) -> None:
    if not isinstance(model, Classifier):
        raise TypeError(
            "predict takes a globalpool Classifier (globalpool.load, create_model or "
            f"replace_head give one); got {type(model).__name__}"
        )


def predict(
    model: Classifier,
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
        model: a Classifier (:func:`globalpool.load` gives one with its run's classes,
            mean and std).
        images: one image or a list: file paths, PIL images, uint8 numpy (H, W, C) /
            (H, W), tensors (C, H, W) / (N, C, H, W) uint8 or float in [0, 1].
        topk: how many classes per image (capped at the number of classes).
        size, batch_size, mean, std: see :func:`predict_proba`.
        classes: class names; default ``model.classes``.

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
    names = classes if classes is not None else model.classes
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
