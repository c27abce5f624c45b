"""Conservative loss of Zhu et al. 2018."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss


class ConservativeLoss(SegmentationLoss):
    """Conservative loss (Zhu et al. 2018, ECCV, "Penalizing Top Performers"), their eq. (1).

    ``CL(p̂_y) = λ (1 + log_a p̂_y)² · log_a(-log_a p̂_y)`` per voxel, averaged; ``p̂_y`` is the softmax
    probability of the true class. It is 0 at ``p̂_y = 1/a``, large for bad voxels like CE, and
    its gradient vanishes at the moderate ``p̂_y = 1/a`` (the paper's regulariser against
    over-fitting the source domain). The survey gives no equation. It is unbounded below as
    ``p̂_y -> 1``; ``-log_a p̂_y`` is clamped at ``1e-4`` so saturated logits give a finite value and a
    zero gradient. Hand-written: MONAI has no such loss. Not non-negative.

    Args:
        lam: the scale ``λ``.
        base: the logarithm base ``a > 1`` (the zero of the loss is at ``p̂_y = 1/a``).
    """

    loss_name = "conservative"

    def __init__(self, lam: float = 5.0, base: float = math.e) -> None:
        super().__init__()
        if base <= 1.0:
            raise CTBenchError(f"loss 'conservative': base={base} must be > 1 (the paper uses e)")
        self.lam = float(lam)
        self.log_base = math.log(base)

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        neg_log_a = (-F.log_softmax(logits, dim=1).gather(1, labels)[:, 0] / self.log_base).clamp_min(1e-4)
        return (self.lam * (1.0 - neg_log_a) ** 2 * torch.log(neg_log_a) / self.log_base).mean()
