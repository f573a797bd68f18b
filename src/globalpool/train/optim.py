"""Optimiser construction: SGD (Nesterov momentum) or AdamW, with weight-decay groups,
and the fine-tuning settings (a frozen backbone, a lower backbone learning rate)."""

from __future__ import annotations

import types

import torch
from torch import nn

from globalpool.train.config import TrainConfig


def param_groups(
    model: nn.Module,
    weight_decay: float,
    decay_all: bool = False,
    backbone_lr_scale: float = 1.0,
    bias_lr_scale: float = 1.0,
) -> list[dict]:
    """Parameter groups: weights of rank >= 2 (decayed) and the rest (not decayed).

    Biases and normalisation scales (rank 1) are not decayed unless ``decay_all``,
    as is usual for CNN training. Frozen parameters are left out. Every group has an
    ``lr_scale``: the training loop sets its learning rate to ``lr * lr_scale``.

    With ``bias_lr_scale != 1`` the rank-1 parameters train at that multiple of their
    group's learning rate, and their weight decay (``decay_all``) is divided by it: SGD
    decays by ``lr * weight_decay`` per step, which stays the weights' amount.

    With ``backbone_lr_scale != 1`` there are four groups: the backbone's (``model.
    backbone``) decayed and not decayed, at ``lr_scale = backbone_lr_scale``, then the
    rest (the head) at 1.0. Otherwise two, as before.

    Example:
        >>> groups = param_groups(nn.Linear(4, 2), 5e-4)
        >>> [len(g["params"]) for g in groups], [g["weight_decay"] for g in groups]
        ([1, 1], [0.0005, 0.0])
    """

    def split(params, scale: float) -> list[dict]:
        params = [p for p in params if p.requires_grad]
        if bias_lr_scale != 1.0:
            # Its own layout; without it the groups stay as they were, so the optimiser
            # states of earlier checkpoints (decay_all: all in the first group) still load.
            weights = [p for p in params if p.ndim >= 2]
            vectors = [p for p in params if p.ndim < 2]
            vector_decay = weight_decay / bias_lr_scale if decay_all else 0.0
            return [
                {"params": weights, "weight_decay": weight_decay, "lr_scale": scale},
                {"params": vectors, "weight_decay": vector_decay,
                 "lr_scale": scale * bias_lr_scale},
            ]  # fmt: skip
        decay, no_decay = [], []
        for param in params:
            (decay if decay_all or param.ndim >= 2 else no_decay).append(param)
        return [
            {"params": decay, "weight_decay": weight_decay, "lr_scale": scale},
            {"params": no_decay, "weight_decay": 0.0, "lr_scale": scale},
        ]

    if backbone_lr_scale == 1.0:
        return split(model.parameters(), 1.0)
    backbone = backbone_of(model)
    in_backbone = {id(p) for p in backbone.parameters()}
    rest = [p for p in model.parameters() if id(p) not in in_backbone]
    return split(backbone.parameters(), float(backbone_lr_scale)) + split(rest, 1.0)


def backbone_of(model: nn.Module) -> nn.Module:
    """``model.backbone`` (every Classifier has one), or a ValueError."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(
            f"{type(model).__name__} has no .backbone, so freeze_backbone and "
            "backbone_lr_scale do not apply to it"
        )
    return backbone


def _train_stays_off(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Freeze ``model.backbone``: ``requires_grad=False`` on its parameters, and eval mode
    from now on (its ``train()`` is made to keep eval mode, so ``model.train()`` leaves
    its batch-norm statistics and dropout alone). Returns the backbone.

    The head, including a pool's learnable parameters, still trains. Nothing of this is
    saved: a reloaded model is an ordinary one.
    """
    backbone = backbone_of(model)
    for param in backbone.parameters():
        param.requires_grad_(False)
    backbone.train = types.MethodType(_train_stays_off, backbone)
    backbone.eval()
    return backbone


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer`` with ``config.lr`` as initial lr.

    The learning rate is then set every step by :mod:`globalpool.train.schedule`, times
    each group's ``lr_scale`` (``config.backbone_lr_scale`` for the backbone's groups).
    """
    groups = param_groups(
        model, config.weight_decay, config.decay_norm_and_bias, config.backbone_lr_scale,
        config.bias_lr_scale,
    )  # fmt: skip
    if not any(g["params"] for g in groups):
        raise ValueError("the model has no parameter to train (everything is frozen)")
    for group in groups:
        group["lr"] = config.lr * group["lr_scale"]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas))
    raise ValueError(f"optimizer must be 'sgd' or 'adamw'; got {config.optimizer!r}")
