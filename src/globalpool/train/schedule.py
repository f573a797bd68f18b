"""Learning-rate schedules as pure functions of the global step.

Being a function of ``(step, total_steps)`` only, the schedule needs no state of its
own: resuming at step ``s`` gives exactly the learning rate of the uninterrupted run.
"""

from __future__ import annotations

import math

ONECYCLE_DIV = 25.0  # initial lr = lr / 25 (as torch's OneCycleLR)
ONECYCLE_FINAL_DIV = 1e4  # final lr = lr / 1e4


def lr_at(
    step: int,
    total_steps: int,
    *,
    lr: float,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    final_lr_ratio: float = 0.0,
) -> float:
    """Learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    Args:
        schedule: ``cosine``: linear warm-up from ``lr / warmup_steps`` to ``lr``, then
            half a cosine down to ``lr * final_lr_ratio``; ``linear``: the same warm-up,
            then a straight line down to ``lr * final_lr_ratio``; ``onecycle``: linear warm-up
            from ``lr / 25``, then cosine down to ``lr / 1e4``; ``constant``: warm-up,
            then ``lr``.

    Example:
        >>> [round(lr_at(s, 10, lr=1.0, warmup_steps=2), 3) for s in (0, 1, 2, 6, 9)]
        [0.5, 1.0, 1.0, 0.5, 0.038]
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1; got {total_steps}")
    step = min(max(step, 0), total_steps - 1)
    if schedule == "onecycle":
        start, end = lr / ONECYCLE_DIV, lr / ONECYCLE_FINAL_DIV
    else:
        start, end = 0.0, lr * final_lr_ratio
    if step < warmup_steps:
        if schedule == "onecycle":
            return start + (lr - start) * step / warmup_steps
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule not in ("cosine", "linear", "onecycle"):
        raise ValueError(f"schedule must be cosine, linear, onecycle or constant; got {schedule!r}")
    decay_steps = total_steps - warmup_steps
    t = (step - warmup_steps) / decay_steps
    if schedule == "linear":
        return lr + (end - lr) * t
    return end + (lr - end) * 0.5 * (1.0 + math.cos(math.pi * t))
