"""Distance-transform Hausdorff loss of Karimi & Salcudean 2019.

Karimi & Salcudean, "Reducing the Hausdorff distance in medical image segmentation with convolutional
neural networks" (IEEE TMI 39(2):499, 2019; arXiv 1904.10030), eq. (8):

    Loss_DT(q, p) = 1/|Ω| Σ_Ω (p - q)² ∘ (d_p^α + d_q^α),   α = 2

with ``q`` the predicted probability, ``p`` the ground truth, ``d_p`` and ``d_q`` the distances to the
boundary of the ground truth and of the thresholded prediction (``q > 0.5``): errors far from either
boundary cost quadratically more, which is what the Hausdorff distance measures. Computed per
foreground class on its softmax channel and averaged (MONAI's ``HausdorffDTLoss``, which is this
equation; the distances are constants for the gradient). Karimi & Salcudean train with ``Loss_DT + λ
Loss_DSC`` (section II-D), ``λ`` re-set every epoch to the ratio of the two terms' means; here ``λ``
(``lambda_dice``) is fixed, 1 by default (0: the equation alone).
"""

from __future__ import annotations

import monai.losses
import torch

from ctbench.losses.base import SegmentationLoss
from ctbench.losses.dice import DiceLoss


class HausdorffDTLoss(SegmentationLoss):
    """Karimi & Salcudean's ``Loss_DT`` (eq. 8, MONAI ``HausdorffDTLoss``) plus ``lambda_dice`` times the Dice loss.

    Args:
        alpha: exponent of the distances (paper: 2).
        include_background: also score class 0.
        lambda_dice: weight of the Dice loss added to it (0: the distance term alone).
    """

    loss_name = "hausdorff_dt"

    def __init__(self, alpha: float = 2.0, include_background: bool = False, lambda_dice: float = 1.0) -> None:
        super().__init__()
        self.hd = monai.losses.HausdorffDTLoss(alpha=alpha, include_background=include_background,
                                               to_onehot_y=True, softmax=True)
        self.dice = DiceLoss(include_background=include_background)
        self.lambda_dice = float(lambda_dice)

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.hd(logits, labels)
        if self.lambda_dice:
            loss = loss + self.lambda_dice * self.dice.compute(logits, labels)
        return loss
