"""Reading image files for the analysis commands and fitting them to a model's input.

Pooling-head models take any size at or above their ``min_input_size``; FC-head models
only their trained ``input_size``. :func:`fit_to_model` resizes only when it must and
says why, so the commands can tell the user.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from globalpool.data import normalize
from globalpool.data.folder import read_image

__all__ = ["fit_to_model", "normalize_images", "read_image"]


def _resize_uint8(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    out = F.interpolate(
        image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True
    )
    return out[0].round().clamp(0, 255).to(torch.uint8)


def fit_to_model(image: torch.Tensor, model: nn.Module) -> tuple[torch.Tensor, str | None]:
    """Resize a uint8 (C, H, W) image only where the model needs it.

    - FC head (``head_kind == "fc"`` or ``head.fixed_size``): to the trained
      ``input_size``;
    - pooling heads: unchanged, unless smaller than ``min_input_size``, then scaled up
      (aspect ratio kept) until both sides reach it.

    Returns:
        ``(image, note)``: note is None when unchanged, else a sentence saying why.
    """
    h, w = (int(s) for s in image.shape[-2:])
    fixed = getattr(model, "head_kind", None) == "fc" or bool(
        getattr(getattr(model, "head", None), "fixed_size", False)
    )
    if fixed:
        size = tuple(int(s) for s in model.input_size)
        if (h, w) == size:
            return image, None
        note = (
            f"resized {w}x{h} -> {size[1]}x{size[0]} (W x H): an FC head only takes "
            "the input size it was trained at"
        )
        return _resize_uint8(image, size), note
    min_h, min_w = (int(s) for s in getattr(model, "min_input_size", (1, 1)))
    if h >= min_h and w >= min_w:
        return image, None
    scale = max(min_h / h, min_w / w)
    size = (max(min_h, round(h * scale)), max(min_w, round(w * scale)))
    note = (
        f"resized {w}x{h} -> {size[1]}x{size[0]} (W x H): below the model's minimum "
        f"input size {min_w}x{min_h}"
    )
    return _resize_uint8(image, size), note


def normalize_images(images_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 ``(x / 255 - mean) / std`` per channel."""
    return normalize(images_uint8, mean, std)
