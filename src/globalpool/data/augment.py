"""Batched augmentation of uint8 image batches: random crop with reflect padding,
horizontal flip and cutout, with no per-sample Python loop.

Crop and flip are one gather: output pixel (i, j) of sample b reads the reflect-padded
image at row ``dy[b] + i`` and column ``dx[b] + j`` (``dx[b] + W - 1 - j`` when flipped);
the padding is folded into the indices, so no padded copy of the batch is made, and one
``torch.gather`` over the flattened pixels serves the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def reflect_index(index: Tensor, size: int) -> Tensor:
    """Map indices in [-(size - 1), 2 * size - 2] into [0, size) as reflect padding does
    (the edge pixel is not repeated: -1 -> 1, size -> size - 2)."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def crop_flip(
    images: Tensor, offsets: Tensor, flip: Tensor | None, padding: int, index: Tensor | None = None
) -> Tensor:
    """Random crops of reflect-padded images, optionally mirrored, as one gather.

    Args:
        images: (N, C, H, W), any dtype.
        offsets: int64 (B, 2), the crop's top-left (dy, dx) in the padded image, each in
            [0, 2 * padding].
        flip: bool (B,), mirror left-right after cropping; None for no flips.
        padding: reflect padding on every side (< H and < W).
        index: int64 (B,), which images to take (default: all N, then B = N).

    Returns:
        (B, C, H, W) with the dtype of ``images``.
    """
    n, c, h, w = images.shape
    if padding >= min(h, w):
        raise ValueError(f"crop padding {padding} must be smaller than the image ({h}x{w})")
    if index is None:
        index = torch.arange(n, device=images.device)
    rows = torch.arange(h, device=images.device)
    cols = torch.arange(w, device=images.device)
    dy = offsets[:, 0, None] - padding
    dx = offsets[:, 1, None] - padding
    col_pos = cols.expand(len(index), w)
    if flip is not None:
        col_pos = torch.where(flip[:, None], (w - 1) - cols, cols)
    src_rows = reflect_index(dy + rows, h)  # (B, H)
    src_cols = reflect_index(dx + col_pos, w)  # (B, W)
    # One flat gather per batch: cheaper on CPU than 4-tensor advanced indexing.
    flat = (src_rows[:, :, None] * w + src_cols[:, None, :]).view(len(index), 1, h * w)
    batch = images[index].view(len(index), c, h * w)
    return batch.gather(2, flat.expand(-1, c, -1)).view(len(index), c, h, w)


def cutout_keep_mask(height: int, width: int, centres: Tensor, size: int) -> Tensor:
    """Bool (B, 1, H, W): False inside a ``size`` x ``size`` square around each centre
    (clipped at the border), True elsewhere. ``centres`` is int64 (B, 2) as (cy, cx)."""
    dev = centres.device
    rows = torch.arange(height, device=dev)
    cols = torch.arange(width, device=dev)
    y0 = centres[:, 0, None] - size // 2
    x0 = centres[:, 1, None] - size // 2
    in_rows = (rows >= y0) & (rows < y0 + size)  # (B, H)
    in_cols = (cols >= x0) & (cols < x0 + size)  # (B, W)
    return ~(in_rows[:, :, None] & in_cols[:, None, :])[:, None]


@dataclass(frozen=True)
class Augment:
    """Training augmentation applied by :class:`~globalpool.data.Loader`.

    Args:
        crop_padding: reflect-pad by this many pixels, then crop back to H x W at a
            random offset (0 disables).
        flip: mirror half of the images left-right.
        alternate_flip: with ``flip``, derandomise it (K. Jordan, arXiv:2404.00498): a
            random half of the images is mirrored in even epochs and the other half in
            odd ones, so every image is seen both ways within any two epochs (the
            :class:`~globalpool.data.Loader` applies it; see :meth:`epoch_flips`).
        cutout: side of a square set to the mean (0 after normalisation); 0 disables.

    Example:
        >>> import torch
        >>> aug = Augment(crop_padding=4, flip=True)
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        >>> aug.apply(x, aug.sample(8, 32, 32, g)).shape
        torch.Size([8, 3, 32, 32])
    """

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0
    alternate_flip: bool = False

    def __post_init__(self) -> None:
        for name in ("crop_padding", "cutout"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Augment.{name} must be an int >= 0; got {value!r}")
        if self.alternate_flip and not self.flip:
            raise ValueError("Augment.alternate_flip needs flip=True")

    @staticmethod
    def epoch_flips(first_half: Tensor, epoch: int) -> Tensor:
        """Bool (N,) per image for ``alternate_flip``: ``first_half`` (the images' fixed
        random draw) in even epochs, its complement in odd ones."""
        return first_half if epoch % 2 == 0 else ~first_half

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> dict:
        """Random parameters for n images (CPU tensors; move them with the batch)."""
        p = self.crop_padding
        return {
            "offsets": torch.randint(0, 2 * p + 1, (n, 2), generator=generator),
            "flip": torch.rand(n, generator=generator) < 0.5,
            "centres": torch.stack(
                [
                    torch.randint(0, height, (n,), generator=generator),
                    torch.randint(0, width, (n,), generator=generator),
                ],
                dim=1,
            ),
        }

    def apply(self, images: Tensor, params: dict, index: Tensor | None = None) -> Tensor:
        """Crop and flip uint8 (N, C, H, W) images (rows ``index`` of them); cutout is
        applied by :meth:`cutout_mask` after normalisation."""
        if self.crop_padding == 0 and not self.flip:
            return images if index is None else images[index]
        return crop_flip(
            images, params["offsets"], params["flip"] if self.flip else None,
            self.crop_padding, index,
        )  # fmt: skip

    def cutout_mask(self, height: int, width: int, params: dict) -> Tensor | None:
        """Bool (B, 1, H, W) keep-mask, or None without cutout."""
        if not self.cutout:
            return None
        return cutout_keep_mask(height, width, params["centres"], self.cutout)
