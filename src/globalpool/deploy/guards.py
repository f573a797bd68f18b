"""Input checks that survive export: what PyTorch refuses, the exported graph refuses too.

An ONNX graph has no ``raise``. Each check here is therefore written twice over: in eager
PyTorch it raises a ``ValueError`` that says what was expected; while traced it counts
what is wrong (samples with no valid pixel, axes that differ, samples without the corner
pixel of the minimum size) and reads element ``count`` of a one-element tensor, a
``Gather`` that only succeeds when the count is 0; its zero feeds the logits as ``+ 0``.
onnxruntime then stops with an error naming the node, for example
``/mask_has_valid_pixel/Gather``, instead of answering with NaN or with logits from a
feature map the model never saw.

The three checks:

- :class:`MinInputSize`: H, W at least the model's ``min_input_size`` (fastnet's 4x4
  input would reach the pool as an empty map);
- :class:`MaskMatchesImage`: the mask is (N, H, W) of the image (not merely
  broadcastable, not the same count in another shape);
- :class:`MaskHasValidPixel`: every sample keeps at least one True pixel (an empty mask
  gives 0 / 0 in the average pools).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GuardedClassifier", "MaskHasValidPixel", "MaskMatchesImage", "MinInputSize"]


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _zero_unless(bad: torch.Tensor) -> torch.Tensor:
    """A (1,) zero that only exists when the int tensor ``bad`` is 0.

    It is element ``bad`` of a one-element tensor: an ONNX ``Gather`` whose index is out
    of range otherwise, which onnxruntime refuses at run time (its optimiser rewrites
    Shape and Reshape chains, but cannot drop a Gather whose index it does not know). The
    zero is added to the logits, so no exporter prunes the check."""
    return torch.index_select(bad.new_zeros(1).float(), 0, bad.reshape(1).long())


class MinInputSize(nn.Module):
    """Refuse images smaller than ``(min_h, min_w)``.

    Input shape: image (N, C, H, W). Output shape: (1,) zero (the traced proof).
    """

    def __init__(self, min_size: tuple[int, int]):
        super().__init__()
        self.min_size = (int(min_size[0]), int(min_size[1]))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        min_h, min_w = self.min_size
        if not _tracing() and (image.shape[-2] < min_h or image.shape[-1] < min_w):
            raise ValueError(
                f"input size {tuple(int(s) for s in image.shape[-2:])} is below this model's "
                f"minimum input size {self.min_size}"
            )
        # Pixel (min_h - 1, min_w - 1) of channel 0: present in all N samples unless the
        # image is smaller; count it against N.
        corner = torch.ones_like(image[:, 0, min_h - 1 : min_h, min_w - 1 : min_w]).sum()
        samples = torch.ones_like(image[:, 0, 0, 0]).sum()
        return _zero_unless((samples - corner).long())


class MaskMatchesImage(nn.Module):
    """Refuse a mask that is not (N, H, W) of the image (N, C, H, W).

    Output shape: the mask as (N, H, W) bool.
    """

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, _, h, w = image.shape
        if not _tracing() and tuple(mask.shape) != (n, h, w):
            raise ValueError(
                f"mask must have shape (N, H, W) = {(int(n), int(h), int(w))} for an image of "
                f"shape {tuple(image.shape)}, got {tuple(mask.shape)}"
            )
        # Each axis against the image's (N, H, W); the graph's declared rank of 3 covers
        # the rest.
        wanted = torch._shape_as_tensor(image)[torch.tensor([0, 2, 3])]
        bad = (torch._shape_as_tensor(mask) != wanted).sum()
        return mask & (_zero_unless(bad) == 0)


class MaskHasValidPixel(nn.Module):
    """Refuse a mask (N, H, W) with a sample that has no True pixel.

    Output shape: (1,) zero (the traced proof).
    """

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        n = mask.shape[0]
        has_pixel = mask.reshape(n, -1).to(torch.float32).amax(1) > 0
        if not _tracing() and not bool(has_pixel.all()):
            empty = (~has_pixel).nonzero().flatten().tolist()
            raise ValueError(
                f"mask has no valid (True) pixel for sample(s) {empty[:10]}; every sample "
                "needs at least one valid pixel"
            )
        return _zero_unless((~has_pixel).sum())


class GuardedClassifier(nn.Module):
    """An exported classifier's front door: the checks above, then the model.

    Args:
        model: the module to export: a Classifier (input ``image``) or a MaskedClassifier
            (inputs ``image``, ``mask``).
        min_size: the smallest (H, W) the model accepts.
        mask: whether ``model`` takes a mask.

    Input shape: image (N, C, H, W) float32[, mask (N, H, W) bool].
    Output shape: (N, K) logits, identical to ``model``'s.
    """

    def __init__(self, model: nn.Module, min_size: tuple[int, int], mask: bool = False):
        super().__init__()
        self.model = model
        self.input_at_least_min_size = MinInputSize(min_size)
        self.mask_matches_image = MaskMatchesImage() if mask else None
        self.mask_has_valid_pixel = MaskHasValidPixel() if mask else None

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        zero = self.input_at_least_min_size(image)
        if self.mask_matches_image is None:
            return self.model(image) + zero
        mask = self.mask_matches_image(image, mask)
        zero = zero + self.mask_has_valid_pixel(mask)
        return self.model(image, mask) + zero
