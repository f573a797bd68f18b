"""Lookahead weight averaging: every k steps, average the weights into an EMA and restart
from the average.

Averaging the weights of the last stretch of training lands in a flatter, better point
than the last iterate; resetting the live weights to the average (lookahead) rather than
keeping a shadow copy (plain EMA) lets the optimiser continue from there. The averaging
strength ramps up as ``base_decay * progress**3``: early weights, far from the solution,
are not averaged at all. At the end :meth:`finish` leaves the model holding the average.
"""

from __future__ import annotations

import torch
from torch import nn


class Lookahead:
    """Weight averaging with reset, applied every ``every`` optimisation steps.

    Args:
        model: the (unwrapped) model; every floating-point parameter and buffer (batch-norm
            running statistics too) is averaged.
        every: steps between averaging updates (>= 1).
        total_steps: the run's number of steps (for the decay ramp).
        base_decay: the EMA decay at the end of training, in [0, 1).

    Example:
        >>> model = nn.Linear(2, 1)
        >>> la = Lookahead(model, every=1, total_steps=10, base_decay=0.5)
        >>> la.after_step(9)  # the 10th step: decay 0.5
        >>> torch.equal(la.average["weight"], model.weight.detach())
        True
    """

    def __init__(self, model: nn.Module, *, every: int, total_steps: int, base_decay: float):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"lookahead every must be an int >= 1; got {every!r}")
        if not 0.0 <= base_decay < 1.0:
            raise ValueError(f"lookahead base_decay must be in [0, 1); got {base_decay!r}")
        self.every, self.total_steps, self.base_decay = every, max(1, total_steps), base_decay
        self._live = {
            name: t for name, t in model.state_dict(keep_vars=True).items() if t.is_floating_point()
        }
        self.average = {name: t.detach().clone() for name, t in self._live.items()}

    def decay_at(self, step: int) -> float:
        """The EMA decay used after 0-based ``step``: ``base_decay * ((step+1)/total)**3``."""
        return self.base_decay * min(1.0, (step + 1) / self.total_steps) ** 3

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """Call after optimiser step ``step`` (0-based, global); acts every ``every`` steps."""
        if (step + 1) % self.every:
            return
        decay = self.decay_at(step)
        for name, live in self._live.items():
            avg = self.average[name]
            avg.lerp_(live.detach().to(avg.dtype), 1.0 - decay)
            live.data.copy_(avg)

    @torch.no_grad()
    def finish(self) -> None:
        """Set the model to the running average (drops the steps since the last update)."""
        for name, live in self._live.items():
            live.data.copy_(self.average[name])

    def state_tensors(self, prefix: str = "lookahead.") -> dict[str, torch.Tensor]:
        """The average as CPU tensors named ``prefix + name`` (for the training state)."""
        return {prefix + n: t.detach().cpu().contiguous() for n, t in self.average.items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], prefix="lookahead.") -> None:
        """Restore from :meth:`state_tensors` output; every name must be present."""
        missing = [n for n in self.average if prefix + n not in tensors]
        if missing:
            raise ValueError(
                f"the training state has no lookahead average for {', '.join(missing[:3])}"
                " (was the run started without --lookahead-every?)"
            )
        for name, avg in self.average.items():
            avg.copy_(tensors[prefix + name])
