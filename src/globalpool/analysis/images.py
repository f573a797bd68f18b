"""Reading image files for the analysis commands and fitting them to a model's input.

Pooling-head models take any size at or above their ``min_input_size``; FC-head models
only their trained ``input_size``. :func:`fit_to_model` resizes only when it must and
says why, so the commands can tell the user.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["fit_to_model", "normalize_images", "read_image"]


def read_image(path: str | os.PathLike, in_chans: int = 3) -> torch.Tensor:
    """Read an image file as uint8 (C, H, W): RGB for ``in_chans`` 3, grey ("L") for 1.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an image Pillow can read, or ``in_chans`` not 1 or 3.

    Example:
        >>> read_image("cat.png").shape  # doctest: +SKIP
        torch.Size([3, 224, 300])
    """
    from PIL import Image, UnidentifiedImageError

    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 (grey) or 3 (RGB); got {in_chans}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {str(path)!r}")
    try:
        with Image.open(path) as img:
            arr = torch.from_numpy(np.array(img.convert("L" if in_chans == 1 else "RGB")))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read {str(path)!r} as an image: {err}") from None
    return arr[None] if arr.ndim == 2 else arr.permute(2, 0, 1).contiguous()


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
    """uint8 (N, C, H, W) -> float32 ``(x / 255 - mean) / std`` per channel.

    Uses ``globalpool.data.normalize`` when the data package provides it.
    """
    try:
        from globalpool.data import normalize
    except ImportError:  # keep analysis usable without the data package
        normalize = None
    if normalize is not None:
        return normalize(images_uint8, mean, std)
    c = images_uint8.shape[1]
    m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
    s = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
    if m.numel() not in (1, c) or s.numel() not in (1, c):
        raise ValueError(f"mean/std need 1 or {c} values; got {m.numel()} and {s.numel()}")
    return (images_uint8.float() / 255.0 - m.view(1, -1, 1, 1)) / s.view(1, -1, 1, 1)
