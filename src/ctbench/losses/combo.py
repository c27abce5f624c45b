"""Compound losses: cross entropy plus an overlap term (Dice + CE of nnU-Net, Combo loss)."""

from __future__ import annotations

import torch

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss
from ctbench.losses.cross_entropy import BalancedCrossEntropyLoss, CrossEntropyLoss
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


class ComboLoss(SegmentationLoss):
    """Combo loss of Taghanaki et al. 2018 (survey section 4.5): ``α L_mBCE - (1 - α) Dice``.

    ``L_mBCE = -mean(β p log p̂ + (1 - β)(1 - p) log(1 - p̂))`` is the balanced cross entropy of
    survey eq. (2) (:class:`~ctbench.losses.cross_entropy.BalancedCrossEntropyLoss` with fixed
    ``beta``; ``β > 0.5`` penalises false negatives more) and ``Dice`` the soft Dice coefficient
    (``1 -`` :class:`~ctbench.losses.dice.DiceLoss`), averaged over classes where the paper sums
    over them (the same for one foreground class), so ``alpha`` means the same for any C. The
    loss lies in ``[-1, ∞)``: ``alpha=1`` is the balanced CE, ``alpha=0`` is ``DiceLoss - 1``.
    Hand-written: MONAI has no Combo loss.

    Args:
        alpha: weight of the cross-entropy term (``1 - alpha`` for the Dice term).
        beta: weight of foreground voxels in the cross entropy (``1 - beta`` for background).
        include_background: include class 0 in the Dice term.
    """

    loss_name = "combo"

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, include_background: bool = False) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise CTBenchError(f"loss 'combo': alpha={alpha} must be in [0, 1] (weight of the CE term)")
        self.alpha = float(alpha)
        self.ce = BalancedCrossEntropyLoss(beta=beta)
        self.dice = DiceLoss(include_background=include_background)

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dice_coefficient = 1.0 - self.dice.compute(logits, labels)
        return self.alpha * self.ce.compute(logits, labels) - (1.0 - self.alpha) * dice_coefficient
