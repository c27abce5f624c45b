"""Per-step learning-rate schedules with linear warm-up, named by ``_target_`` in ``configs/optim/``.

Built as ``instantiate(cfg.optim.scheduler)(optimizer, total_steps=...)`` (``_partial_: true``), so a
new schedule is a class here or any ``torch.optim.lr_scheduler`` class taking ``total_steps``. Torch has
cosine and polynomial decay but not with a warm-up that counts in the same steps, hence these few lines.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


class _WarmupSchedule(LambdaLR):
    """LR factor ``(step + 1) / warmup_steps`` during warm-up, then :meth:`decay` of the progress in [0, 1]."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0) -> None:
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        super().__init__(optimizer, self.factor)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return self.decay(min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)))

    def decay(self, progress: float) -> float:
        return 1.0


class WarmupConstantLR(_WarmupSchedule):
    """Warm-up, then the optimiser's learning rate unchanged."""


class WarmupCosineLR(_WarmupSchedule):
    """Warm-up, then cosine decay to ``min_factor`` x the learning rate (Loshchilov & Hutter 2017, SGDR)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                 min_factor: float = 0.0) -> None:
        self.min_factor = float(min_factor)
        super().__init__(optimizer, total_steps, warmup_steps)

    def decay(self, progress: float) -> float:
        return 0.5 * (1 + math.cos(math.pi * progress)) * (1 - self.min_factor) + self.min_factor


class PolyLR(_WarmupSchedule):
    """Polynomial decay ``(1 - progress) ** exponent`` (nnU-Net's schedule, exponent 0.9)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                 exponent: float = 0.9) -> None:
        self.exponent = float(exponent)
        super().__init__(optimizer, total_steps, warmup_steps)

    def decay(self, progress: float) -> float:
        return (1 - progress) ** self.exponent
