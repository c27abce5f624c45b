"""Per-step learning-rate schedules with linear warm-up, named by ``_target_`` in ``configs/optim/``.

Built as ``instantiate(cfg.optim.scheduler)(optimizer, total_steps=...)`` (``_partial_: true``), so a
new schedule is a class here or any ``torch.optim.lr_scheduler`` class taking ``total_steps``. Torch has
cosine and polynomial decay but not with a warm-up that counts in the same steps, nor over a wall-clock
budget (``trainer.max_time``: :attr:`_WarmupSchedule.time_fraction`), hence these few lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch.optim.lr_scheduler import LambdaLR

from ctbench.errors import CTBenchError


class _WarmupSchedule(LambdaLR):
    """LR factor ``(step + 1) / warmup_steps`` during warm-up, then :meth:`decay` of the progress in [0, 1].

    ``params``: the schedule's own settings, checked against :attr:`defaults` (an unknown name is one line).
    ``time_fraction``: with a time budget, a function giving the share of it spent (set by the module for
    ``trainer.max_time``); the progress is then the larger of the step and the time fraction. ``progress``
    is the latest progress, saved with the schedule's state (the function is not). Warm-up takes at most a
    fifth of the run: a run shorter than five warm-ups (a debug run) would otherwise end before its peak
    learning rate and never complete its schedule.
    """

    time_fraction: Callable[[], float] | None

    defaults: ClassVar[dict[str, float]] = {}

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                 **params: float) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise CTBenchError(f"optim.scheduler: {type(self).__name__} has no setting {', '.join(unknown)}; its "
                               f"settings are warmup_steps{''.join(', ' + k for k in self.defaults)}", exit_code=2)
        self.params = {k: float(params.get(k, v)) for k, v in self.defaults.items()}
        self.total_steps, self.warmup_steps = int(total_steps), min(int(warmup_steps), int(total_steps) // 5)
        if self.warmup_steps < int(warmup_steps):  # a short (debug) run would end inside its warm-up
            print(f"optim.scheduler.warmup_steps={int(warmup_steps)} is over a fifth of the run's {total_steps} "
                  f"steps: warm-up shortened to {self.warmup_steps} steps, so the schedule reaches its end")
        self.time_fraction, self.progress = None, 0.0
        super().__init__(optimizer, self.factor)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        if self.time_fraction is not None:
            progress = max(progress, self.time_fraction())
        self.progress = min(1.0, progress)
        return self.decay(self.progress)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.pop("time_fraction", None)  # a function of this process's clock: plain data only in checkpoints
        return state

    def decay(self, progress: float) -> float:
        return 1.0


class WarmupConstantLR(_WarmupSchedule):
    """Warm-up, then the optimiser's learning rate unchanged."""


class WarmupCosineLR(_WarmupSchedule):
    """Warm-up, then cosine decay to ``min_factor`` x the learning rate (Loshchilov & Hutter 2017, SGDR)."""

    defaults: ClassVar[dict[str, float]] = {"min_factor": 0.0}

    def decay(self, progress: float) -> float:
        floor = self.params["min_factor"]
        return 0.5 * (1 + math.cos(math.pi * progress)) * (1 - floor) + floor


class PolyLR(_WarmupSchedule):
    """Polynomial decay ``(1 - progress) ** exponent`` (nnU-Net's schedule, exponent 0.9)."""

    defaults: ClassVar[dict[str, float]] = {"exponent": 0.9}

    def decay(self, progress: float) -> float:
        return (1 - progress) ** self.params["exponent"]
