"""Optimiser construction: SGD (Nesterov momentum) or AdamW, with weight-decay groups."""

from __future__ import annotations

import torch
from torch import nn

from globalpool.train.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Two parameter groups: weights of rank >= 2 (decayed) and the rest (not decayed).

    Biases and normalisation scales (rank 1) are not decayed unless ``decay_all``,
    as is usual for CNN training. Frozen parameters are left out.

    Example:
        >>> groups = param_groups(nn.Linear(4, 2), 5e-4)
        >>> [len(g["params"]) for g in groups], [g["weight_decay"] for g in groups]
        ([1, 1], [0.0005, 0.0])
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (decay if decay_all or param.ndim >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer`` with ``config.lr`` as initial lr.

    The learning rate is then set every step by :mod:`globalpool.train.schedule`.
    """
    groups = param_groups(model, config.weight_decay, config.decay_norm_and_bias)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas))
    raise ValueError(f"optimizer must be 'sgd' or 'adamw'; got {config.optimizer!r}")
