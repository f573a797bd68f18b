"""Turn whatever a user hands to ``predict`` into float image tensors in [0, 1].

Accepted inputs, alone or in a list/tuple:

- a file path (``str`` or ``os.PathLike``) of an image PIL can read;
- a ``PIL.Image.Image``;
- a ``numpy.ndarray`` of dtype uint8, (H, W, C) or (H, W);
- a ``torch.Tensor`` (C, H, W) or (N, C, H, W), uint8 (0..255) or floating point in
  [0, 1] (raw pixel values: *not* mean/std normalised; normalisation is ours to do).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from globalpool.data.folder import read_image

__all__ = ["IMAGE_SUFFIXES", "find_images", "resize_image", "to_image_tensors"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def find_images(paths) -> list[Path]:
    """Expand files and folders into a sorted list of image files.

    Folders are searched recursively for files ending in one of ``IMAGE_SUFFIXES``
    (case-insensitive); a file named directly is taken whatever its suffix.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: nothing to predict on (no paths, or folders without images).
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(
                    p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such image file or folder: {str(path)!r}")
    if not found:
        raise ValueError(
            f"no images found in {[str(p) for p in paths]}; expected image files or folders "
            f"holding files ending in {', '.join(IMAGE_SUFFIXES)}"
        )
    return found


def _from_pil(image, channels: int) -> torch.Tensor:
    mode = "L" if channels == 1 else "RGB"
    array = np.asarray(image.convert(mode), dtype=np.uint8)
    return _from_numpy(array, channels, what="PIL image")


def _from_path(path: Path, channels: int) -> torch.Tensor:
    image = read_image(path, in_chans=1 if channels == 1 else 3)
    return _match_channels(image.float() / 255.0, channels, str(path))


def _from_numpy(array: np.ndarray, channels: int, what: str = "numpy array") -> torch.Tensor:
    if array.dtype != np.uint8:
        raise TypeError(
            f"{what}: expected dtype uint8 (H, W, C) or (H, W), got dtype {array.dtype}; "
            "convert float images with torch.from_numpy(a).permute(2, 0, 1) (values in [0, 1])"
        )
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"{what}: expected shape (H, W, C) or (H, W), got {array.shape}")
    if not array.flags.writeable:  # e.g. np.asarray(PIL image): torch wants to own it
        array = array.copy()
    chw = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    return _match_channels(chw.float() / 255.0, channels, what)


def _match_channels(image: torch.Tensor, channels: int, what: str) -> torch.Tensor:
    c = image.shape[0]
    if c == channels:
        return image
    if c == 1:  # grey image, colour model: replicate the plane
        return image.expand(channels, -1, -1).clone()
    if channels == 1 and c in (3, 4):  # ITU-R 601 luma, as PIL's "L" conversion
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype).view(3, 1, 1)
        return (image[:3] * weights).sum(0, keepdim=True)
    if c == 4 and channels == 3:  # drop alpha
        return image[:3].clone()
    raise ValueError(f"{what}: has {c} channels, the model takes {channels}")


def _from_tensor(tensor: torch.Tensor, channels: int, what: str) -> list[torch.Tensor]:
    if tensor.ndim == 3:
        batch = tensor[None]
    elif tensor.ndim == 4:
        batch = tensor
    else:
        raise ValueError(f"{what}: expected (C, H, W) or (N, C, H, W), got {tuple(tensor.shape)}")
    if batch.dtype == torch.uint8:
        batch = batch.float() / 255.0
    elif batch.is_floating_point():
        batch = batch.detach().float()
    else:
        raise TypeError(f"{what}: expected a uint8 or floating point tensor, got {batch.dtype}")
    return [_match_channels(image.cpu(), channels, what) for image in batch]


def to_image_tensors(images, channels: int = 3) -> list[torch.Tensor]:
    """Convert one image or a list of images to float32 tensors (C, H, W) in [0, 1].

    Args:
        images: one input or a list/tuple of inputs of the kinds listed in the module
            docstring; an (N, C, H, W) tensor counts as N images.
        channels: the number of channels the model takes (1 or 3 usually); grey inputs
            are replicated to 3 channels, colour inputs converted to luma for 1.

    Returns:
        A list of float32 tensors (C, H, W), one per image, in input order.

    Example:
        >>> import numpy as np
        >>> [t.shape for t in to_image_tensors(np.zeros((8, 6, 3), np.uint8))]
        [torch.Size([3, 8, 6])]
    """
    from PIL import Image

    items = list(images) if isinstance(images, (list, tuple)) else [images]
    out: list[torch.Tensor] = []
    for i, item in enumerate(items):
        what = f"image {i}"
        if isinstance(item, (str, os.PathLike)):
            out.append(_from_path(Path(item), channels))
        elif isinstance(item, Image.Image):
            out.append(_from_pil(item, channels))
        elif isinstance(item, np.ndarray):
            out.append(_from_numpy(item, channels, what))
        elif isinstance(item, torch.Tensor):
            out.extend(_from_tensor(item, channels, what))
        else:
            raise TypeError(
                f"{what}: expected a file path, PIL image, uint8 numpy array or tensor, "
                f"got {type(item).__name__}"
            )
    if not out:
        raise ValueError("no images given")
    return out


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a float image (C, H, W) to ``size`` (H', W') bilinearly with antialiasing.

    Returns the input itself when it already has that size.
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    resized = F.interpolate(
        image[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0].clamp_(0.0, 1.0)
