"""A test loss: Dice + CE, but NaN on DDP rank 1 at its first call (tests/test_run_identity.py)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from ctbench.losses.combo import DiceCELoss


class NaNOnRankOneLoss(DiceCELoss):
    calls = 0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = super().forward(logits, target)
        NaNOnRankOneLoss.calls += 1
        if NaNOnRankOneLoss.calls == 1 and dist.is_initialized() and dist.get_rank() == 1:
            return loss * float("nan")
        return loss
