"""A classifier that takes (image, mask): masked global pooling for a whole model.

The mask lives on the *input image* grid, (N, H, W) bool with True = valid pixel. The
head's pool works on the *feature* grid (N, C, h, w), so the mask is carried down:

1. max-pooled with kernel = stride = the backbone's total stride ``s`` (ceil mode), so a
   feature cell is valid when any input pixel of its s x s block is valid;
2. resized with nearest interpolation to the exact feature size (h, w), which is a no-op
   when h = ceil(H / s) (padded convolutions) and keeps odd backbones working.

Both steps are plain ONNX / TorchScript ops with shapes taken from the tensors, so the
wrapper exports with dynamic batch, height and width.

The stride is measured once at construction by running the backbone on blank images
(:func:`backbone_stride`). For backbones with unpadded (floor) pooling the blocks are
an approximation of each cell's footprint, exact for the common case of a top-left
valid region (an image padded to a larger canvas).
Every sample must keep at least one valid pixel; what a pool returns for an all-False
mask is the pool's business.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from globalpool.models.sizing import input_channels, is_fixed_size

__all__ = ["MaskedClassifier", "backbone_stride", "downsample_mask", "head_forward_masked"]


def backbone_stride(model: nn.Module, input_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Total stride (sh, sw) of the backbone: input pixels per feature cell.

    Measured from how the feature size grows with the input size, so unpadded (floor)
    pooling, which loses a cell or two at the border, does not skew it: fastnet maps
    32 -> 3 and 64 -> 7, stride (64 - 32) / (7 - 3) = 8 (refined with a ~32-cell probe).

    Args:
        model: a Classifier (``backbone``: (N, C_in, H, W) -> (N, C, h, w)).
        input_size: (H, W) of the smaller probe; defaults to ``model.input_size``.
    """
    h0, w0 = tuple(input_size or getattr(model, "input_size", None) or (32, 32))
    in_chans = input_channels(model)
    # The backbone alone: an FC head would refuse the doubled probe size.
    features = getattr(model, "backbone", None) or model.forward_features
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else None

    def cells(h: int, w: int) -> tuple[int, int]:
        with torch.no_grad():
            return tuple(features(torch.zeros(1, in_chans, h, w, dtype=dtype)).shape[-2:])

    def ratio(grow: tuple[int, int], small, large) -> tuple[float, float]:
        return tuple(g / max(1, b - a) for g, a, b in zip(grow, small, large, strict=True))

    def grown(gh: int, gw: int) -> tuple[int, int]:  # one thin probe per axis: cheap
        return cells(h0 + gh, w0)[0], cells(h0, w0 + gw)[1]

    small = cells(h0, w0)
    rough = ratio((h0, w0), small, grown(h0, w0))
    # Second probe ~32 cells larger: the +-1 cell of floor/ceil rounding is then < 4 %.
    grow = tuple(32 * max(1, round(r)) for r in rough)
    fine = ratio(grow, small, grown(*grow))
    return tuple(max(1, round(r)) for r in fine)


def downsample_mask(
    mask: torch.Tensor, feature_size: tuple[int, int] | torch.Size, stride: tuple[int, int]
) -> torch.Tensor:
    """Carry an input-grid mask (N, H, W) bool down to the feature grid (N, h, w) bool.

    Example:
        >>> m = torch.zeros(1, 8, 8, dtype=torch.bool); m[:, :3, :5] = True
        >>> downsample_mask(m, (2, 2), (4, 4)).int().tolist()
        [[[1, 1], [0, 0]]]
    """
    grid = mask[:, None].to(torch.float32)
    if stride != (1, 1):
        grid = F.max_pool2d(grid, kernel_size=stride, stride=stride, ceil_mode=True)
    grid = F.interpolate(grid, size=feature_size, mode="nearest")
    return grid[:, 0] > 0.5


def head_forward_masked(head: nn.Module, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run a pooling head on features (N, C, h, w) with a feature-grid mask (N, h, w).

    Uses ``head(feats, mask=mask)`` when the head's forward takes a mask; otherwise it
    composes the contract's parts: ``ClassMapHead`` = pool(conv(x)) (feat_mult blocks
    summed per class), ``PoolLinearHead`` = classify(pool(x)).
    """
    if "mask" in inspect.signature(head.forward).parameters:
        return head(feats, mask=mask)
    if getattr(head, "pool", None) is None:
        raise ValueError(
            f"{type(head).__name__} has no global pool, so it cannot take a mask "
            "(fixed-size FC heads pool nothing); export without a mask"
        )
    if hasattr(head, "conv"):  # class maps pooled to logits; feat_mult blocks summed
        pooled = head.pool(head.conv(feats), mask=mask)
        mult = int(getattr(head.pool, "feat_mult", 1))
        if mult > 1:
            pooled = pooled.reshape(pooled.shape[0], mult, head.num_classes).sum(1)
        return pooled
    if hasattr(head, "classify"):  # pool then the head's own pooled -> logits step
        return head.classify(head.pool(feats, mask=mask))
    raise ValueError(f"don't know how to apply a mask in head {type(head).__name__}")


class MaskedClassifier(nn.Module):
    """Wrap a pooling-head Classifier so it takes an input-grid mask as second input.

    Args:
        model: a Classifier with a pooling head (``head.pool_name`` not None).
        stride: the backbone's total stride; measured with :func:`backbone_stride` if None.

    Input shape:
        image (N, C_in, H, W) float (normalised, as for the model), mask (N, H, W) bool.

    Output shape:
        (N, num_classes) logits, pooled over valid feature cells only.

    Example:
        >>> from globalpool.models import create_model
        >>> net = MaskedClassifier(create_model("fastnet", 10).eval())
        >>> x, m = torch.randn(2, 3, 32, 32), torch.ones(2, 32, 32, dtype=torch.bool)
        >>> net(x, m).shape
        torch.Size([2, 10])
    """

    def __init__(self, model: nn.Module, stride: tuple[int, int] | None = None):
        super().__init__()
        head = model.head
        if getattr(head, "pool_name", None) is None or is_fixed_size(model):
            raise ValueError(
                f"masked pooling needs a pooling head; this model's head is "
                f"{getattr(model, 'head_kind', type(head).__name__)!r} with no global pool"
            )
        self.model = model
        self.stride = tuple(stride) if stride is not None else backbone_stride(model)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        feats = self.model.forward_features(image)
        feature_mask = downsample_mask(mask, feats.shape[-2:], self.stride)
        return head_forward_masked(self.model.head, feats, feature_mask)
