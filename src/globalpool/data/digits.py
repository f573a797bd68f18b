"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, offline)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from globalpool.data.imageset import Dataset, ImageSet
from globalpool.data.registry import register_dataset
from globalpool.data.split import stratified_split_index


@register_dataset("digits", "scikit-learn's 8x8 handwritten digits, 1,797 images, 10 classes")
def load_digits(
    *, size: int = 8, test_fraction: float = 0.2, seed: int = 0, channels: int = 1
) -> Dataset:
    """Load the digits as uint8 images, optionally upscaled, with a seeded test split.

    The 0..16 grey levels map to 0..255; ``size`` > 8 upscales bilinearly.

    Args:
        size: output height and width (8 = original; e.g. 32 for CIFAR-sized models).
        test_fraction: stratified fraction of each class held out as the test split.
        seed: seed of that split.
        channels: 1 (grey) or 3 (grey repeated, for RGB models).

    Returns:
        Dataset "digits": images uint8 (N, channels, size, size), classes "0".."9".

    Example:
        >>> ds = load_digits(size=32, channels=3)
        >>> ds.train.images.shape[1:], len(ds.train) + len(ds.test)
        (torch.Size([3, 32, 32]), 1797)
    """
    from sklearn.datasets import load_digits as sk_load_digits

    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int; got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; got {channels!r}")
    bunch = sk_load_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] * (255 / 16)
    if size != 8:
        pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
    images = pixels.round().clamp(0, 255).to(torch.uint8).expand(-1, channels, -1, -1)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    full = ImageSet(images.contiguous(), labels, [str(d) for d in range(10)])
    train_idx, test_idx = stratified_split_index(labels, test_fraction, seed, num_classes=10)
    info = {
        "size": size,
        "test_fraction": test_fraction,
        "seed": seed,
        "channels": channels,
        "flip_preserves_label": False,
    }  # a mirrored digit is another symbol
    return Dataset.from_splits("digits", full.subset(train_idx), full.subset(test_idx), info)
