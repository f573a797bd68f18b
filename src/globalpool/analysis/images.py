"""Reading image files for the analysis commands and fitting them to a model's input.

:func:`fit_to_model` feeds images at the training scale by default (the one policy of
``globalpool.models.sizing``) and says when it resized, so the commands can tell the
user.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from globalpool.data import normalize
from globalpool.data.folder import read_image
from globalpool.models.sizing import is_fixed_size, target_size

__all__ = ["fit_to_model", "normalize_images", "read_image"]


def _resize_uint8(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    out = F.interpolate(
        image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True
    )
    return out[0].round().clamp(0, 255).to(torch.uint8)


def fit_to_model(
    image: torch.Tensor, model: nn.Module, size=None, *, grad: bool = False
) -> tuple[torch.Tensor, str | None]:
    """Resize a uint8 (C, H, W) image to the size ``model`` is fed at.

    The scale policy of :func:`globalpool.models.sizing.target_size`: by default the
    training scale (FC heads: ``input_size``; pooling heads: the shorter side to that of
    ``input_size``); ``size="native"`` keeps a pooling head's image as it is (scaled up
    only below ``min_input_size``), an int the shorter side, (H, W) an exact size.
    ``grad``: a backward pass follows (Grad-CAM), for the memory check.

    Returns:
        ``(image, note)``: note is None when unchanged, else a sentence saying why.
    """
    h, w = (int(s) for s in image.shape[-2:])
    out = target_size(model, (h, w), size, grad=grad)
    if out == (h, w):
        return image, None
    if is_fixed_size(model):
        why = "an FC head only takes the input size it was trained at"
    elif size == "native":
        min_h, min_w = (int(v) for v in getattr(model, "min_input_size", (1, 1)))
        why = f"below the model's minimum input size {min_w}x{min_h}"
    else:
        why = "the scale the model was trained at (--size native keeps the image's own)"
    note = f"resized {w}x{h} -> {out[1]}x{out[0]} (W x H): {why}"
    return _resize_uint8(image, out), note


def normalize_images(images_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 ``(x / 255 - mean) / std`` per channel."""
    return normalize(images_uint8, mean, std)
