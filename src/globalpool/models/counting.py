"""Parameter counts (backbone / head) and FLOPs per image (PyTorch's FlopCounterMode)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "count_params"]


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() de-duplicates shared


def count_params(model: nn.Module) -> dict[str, int]:
    """Parameters of a model with ``.backbone`` and ``.head`` (a :class:`Classifier`).

    Returns:
        {"total", "backbone", "head"}; total counts shared tensors once, so it can be less
        than backbone + head only when the two share weights.

    Example:
        >>> from globalpool.models import create_model
        >>> count_params(create_model("nin", 10))["total"]
        966986
    """
    if not (isinstance(getattr(model, "backbone", None), nn.Module)
            and isinstance(getattr(model, "head", None), nn.Module)):  # fmt: skip
        raise TypeError(
            f"count_params needs a model with .backbone and .head (a globalpool Classifier), "
            f"got {type(model).__name__}; wrap a plain module with "
            "globalpool.models.replace_head first"
        )
    return {
        "total": _numel(model),
        "backbone": _numel(model.backbone),
        "head": _numel(model.head),
    }


def count_flops(model: nn.Module, input_size: Sequence[int] | int) -> int:
    """FLOPs of one forward pass of one image, counted by ``torch.utils.flop_counter``.

    A multiply-add counts as 2 FLOPs (PyTorch's convention); only the ops the counter
    knows (convolutions, matmuls, attention) are counted, not activations or pooling.

    Args:
        model: a module with ``in_chans`` (a :class:`Classifier`).
        input_size: (H, W) or an int.

    Example:
        >>> from globalpool.models import create_model
        >>> count_flops(create_model("lenet5", 10), 32) > 0
        True
    """
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    if len(tuple(input_size)) != 2:
        raise ValueError(f"input_size must be an int or (H, W), got {input_size!r}")
    in_chans = getattr(model, "in_chans", None)
    if in_chans is None:
        raise TypeError(f"count_flops needs a model with .in_chans, got {type(model).__name__}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    x = torch.zeros(1, in_chans, *input_size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
