"""Does a saliency map point at what the model uses? The faithfulness scores of the CAM
field, for any map in [0, 1] (:func:`~globalpool.analysis.cam.compute_cam`'s output).

- deletion and insertion (Petsiuk et al. 2018, RISE): the input's pixels, most salient
  first, are removed (set to the baseline: zeros of the normalised image, the data's mean
  colour) or inserted (into a blurred copy of the image), in ``steps`` equal parts; the
  class's softmax probability after each part draws a curve over the fraction of pixels
  changed, and its area (trapezoid rule) is the score. A faithful map makes the
  probability fall fast under deletion (small area) and rise fast under insertion (large
  area).
- average drop and increase in confidence (Chattopadhay et al. 2018, Grad-CAM++): the
  image times its map (``x * m`` of the normalised image, the map as a soft mask, so
  what it hides becomes the data's mean colour) is classified again;
  average drop is ``max(0, p - p_masked) / p`` in percent, increase is whether
  ``p_masked > p``.

Each is computed per image for the class the map explains; :func:`faithfulness`
returns them per image, so callers average as they need.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BLUR_SIGMA", "faithfulness", "pixel_curve"]

BLUR_SIGMA = 5.0  # the insertion baseline's Gaussian blur, in pixels (RISE blurs heavily)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of (N, C, H, W), reflect-padded (radius 3 sigma)."""
    radius = max(1, min(int(3 * sigma), min(x.shape[-2:]) - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    c = x.shape[1]
    y = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    y = F.conv2d(y, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(y, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@torch.no_grad()
def _probs(model: nn.Module, images: torch.Tensor, classes: torch.Tensor, batch_size: int):
    out = []
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size]).float()
        out.append(logits.softmax(1).gather(1, classes[start : start + batch_size, None])[:, 0])
    return torch.cat(out)


def pixel_curve(
    model: nn.Module,
    saliency: torch.Tensor,
    start: torch.Tensor,
    finish: torch.Tensor,
    class_idx: int,
    steps: int,
    batch_size: int = 64,
) -> torch.Tensor:
    """The class probability as pixels go from ``start`` to ``finish``, most salient
    first, in ``steps`` equal parts (ties broken by position, row-major).

    Input shape: start, finish (C, H, W); saliency (H, W).
    Output shape: (steps + 1,): after 0, 1, ..., steps parts.
    """
    h, w = saliency.shape
    order = torch.argsort(saliency.flatten(), descending=True, stable=True)
    counts = torch.linspace(0, h * w, steps + 1).round().long()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(h * w, device=order.device)
    changed = rank[None, :] < counts[:, None].to(rank.device)  # (steps + 1, H*W)
    changed = changed.view(steps + 1, 1, h, w)
    images = torch.where(changed, finish[None], start[None])
    classes = torch.full((steps + 1,), class_idx, dtype=torch.long, device=start.device)
    return _probs(model, images, classes, batch_size)


def _area(curve: torch.Tensor) -> float:
    """Trapezoid area under a curve sampled at equal steps over [0, 1]."""
    return float(torch.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


@torch.no_grad()
def faithfulness(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    class_idx,
    *,
    steps: int = 16,
    blur_sigma: float = BLUR_SIGMA,
    batch_size: int = 64,
) -> dict[str, torch.Tensor]:
    """Deletion and insertion areas, average drop and increase in confidence.

    Args:
        model: the classifier (run in eval mode).
        x: normalised images (N, C, H, W), as the model takes them.
        maps: (N, H, W) saliency in [0, 1] at the input's size (``compute_cam``'s maps).
        class_idx: the class each map explains: an int, or N ints.
        steps: parts of the deletion and insertion curves (each ~H*W/steps pixels).
        blur_sigma: the insertion baseline's blur, pixels.
        batch_size: images per forward pass.

    Returns:
        dict of (N,) float tensors: ``deletion`` and ``insertion`` (areas in [0, 1]),
        ``average_drop`` (percent), ``increase`` (1.0 where the masked image scores
        higher), ``prob`` (the class probability on the image itself).

    Example:
        >>> from globalpool.analysis.cam import compute_cam
        >>> from globalpool.models import create_model
        >>> model = create_model("smallgap", 3, in_chans=3, input_size=(16, 16)).eval()
        >>> x = torch.randn(2, 3, 16, 16)
        >>> _, maps = compute_cam(model, x, 0)
        >>> sorted(faithfulness(model, x, maps, 0, steps=4))
        ['average_drop', 'deletion', 'increase', 'insertion', 'prob']
    """
    want = (x.shape[0], *x.shape[-2:])
    if tuple(maps.shape) != want:
        raise ValueError(f"maps must be (N, H, W) = {want}; got {tuple(maps.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    n = x.shape[0]
    classes = torch.as_tensor(class_idx, dtype=torch.long, device=x.device).expand(n)
    was_training = model.training
    model.eval()
    try:
        prob = _probs(model, x, classes, batch_size)
        masked = _probs(model, x * maps[:, None].to(x.dtype), classes, batch_size)
        blurred = _blur(x, blur_sigma)
        zeros = torch.zeros_like(x[0])
        deletion, insertion = [], []
        for i in range(n):
            k = int(classes[i])
            removed = pixel_curve(model, maps[i], x[i], zeros, k, steps, batch_size)
            added = pixel_curve(model, maps[i], blurred[i], x[i], k, steps, batch_size)
            deletion.append(_area(removed))
            insertion.append(_area(added))
    finally:
        model.train(was_training)
    return {
        "deletion": torch.tensor(deletion),
        "insertion": torch.tensor(insertion),
        "average_drop": 100 * (prob - masked).clamp_min(0) / prob.clamp_min(1e-12),
        "increase": (masked > prob).float(),
        "prob": prob,
    }
