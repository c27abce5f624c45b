"""Compound losses: cross entropy plus an overlap term (Dice + CE of nnU-Net, Combo loss)."""

from __future__ import annotations

import torch

from ctbench.losses.base import SegmentationLoss
from ctbench.losses.cross_entropy import CrossEntropyLoss
from ctbench.losses.dice import DiceLoss


class DiceCELoss(SegmentationLoss):
    """Dice + cross entropy, the default loss of nnU-Net (Isensee et al. 2021).

    ``lambda_dice * DiceLoss + lambda_ce * CrossEntropyLoss`` (survey eq. 7 plus CE); equal to MONAI's
    ``DiceCELoss`` with softmax. nnU-Net leaves the background out of the Dice term.

    Args:
        include_background: include class 0 in the Dice term.
        denominator: ``"l1"`` or ``"l2"`` Dice denominator.
        batch: batch Dice (sums over the batch before the ratio).
        lambda_dice: weight of the Dice term.
        lambda_ce: weight of the cross-entropy term.
    """

    loss_name = "dice_ce"

    def __init__(
        self,
        include_background: bool = False,
        denominator: str = "l1",
        batch: bool = False,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
    ) -> None:
        super().__init__()
        self.dice = DiceLoss(include_background=include_background, denominator=denominator, batch=batch)
        self.ce = CrossEntropyLoss()
        self.lambda_dice = lambda_dice
        self.lambda_ce = lambda_ce

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.lambda_dice * self.dice.compute(logits, labels) + self.lambda_ce * self.ce.compute(logits, labels)
