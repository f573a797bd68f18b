"""Test-time augmentation: average a model's logits over mirrored and shifted views."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalpool.train.config import TTA_MODES

__all__ = ["TTA_MODES", "tta_logits"]


def tta_logits(model: nn.Module, x: Tensor, mode: str = "flip") -> Tensor:
    """Logits of ``model`` averaged over test-time views of ``x``.

    Args:
        model: maps (N, C, H, W) to (N, K) logits; its mode (eval) is left as it is.
        x: (N, C, H, W) normalised images.
        mode: ``none`` (one view), ``flip`` (the image and its mirror, weights 1/2 each) or
            ``flip-translate`` (those two at weight 1/4 each, plus both mirrored views of the
            image shifted one pixel up-left and one pixel down-right, with reflection at the
            border, at 1/8 each): the views training-time crop and flip make likely.

    Returns:
        (N, K) logits (float32 when the model computes in lower precision).

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> tta_logits(net, torch.randn(2, 3, 2, 2), "flip").shape
        torch.Size([2, 3])
    """
    if mode not in TTA_MODES:
        raise ValueError(f"tta mode must be one of {', '.join(TTA_MODES)}; got {mode!r}")
    if x.ndim != 4:
        raise ValueError(f"tta_logits expects (N, C, H, W) images; got shape {tuple(x.shape)}")

    def mirrored(view: Tensor) -> Tensor:
        return 0.5 * (model(view).float() + model(view.flip(-1)).float())

    if mode == "none":
        return model(x).float()
    logits = mirrored(x)
    if mode == "flip":
        return logits
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[..., 0:h, 0:w], padded[..., 2 : h + 2, 2 : w + 2]]
    return 0.5 * logits + 0.25 * sum(
        mirrored(v.contiguous(memory_format=_format(x))) for v in shifted
    )


def _format(x: Tensor) -> torch.memory_format:
    """Keep channels-last inputs channels-last after slicing."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
