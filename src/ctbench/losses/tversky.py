"""Tversky loss (survey eq. 8) and focal Tversky loss."""

from __future__ import annotations

import monai.losses
import torch

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss, monai_region_args, variant_settings


class TverskyLoss(SegmentationLoss, monai.losses.TverskyLoss):
    """Tversky loss of Salehi et al. 2017, survey eq. (8): ``1 - TP / (TP + α FP + β FN)``.

    MONAI's ``TverskyLoss`` with softmax and one-hot targets; ``TP = Σ p̂ p``, ``FP = Σ p̂ (1 - p)``,
    ``FN = Σ (1 - p̂) p`` per sample and class, then averaged. ``alpha = beta = 0.5`` is the Dice
    loss (the survey's "β = 0.5"). The paper's best trade-off, 0.3/0.7, favours recall; it scores
    the lesion channel only, so the background is excluded by default.

    Args:
        include_background: also average the loss of class 0.
        alpha: weight of false positives.
        beta: weight of false negatives.
        batch: sum over the batch before the ratio.
        smooth_nr: added to the numerator.
        smooth_dr: added to the denominator.
    """

    loss_name = "tversky"

    def __init__(self, include_background: bool = False, alpha: float = 0.3, beta: float = 0.7,
                 batch: bool = False, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 reduction: str = "mean") -> None:
        if alpha < 0 or beta < 0:
            raise CTBenchError(f"loss '{self.loss_name}': alpha={alpha}, beta={beta} must be >= 0")
        super().__init__(**monai_region_args(include_background, batch, smooth_nr, smooth_dr, alpha=alpha, beta=beta,
                                             reduction=reduction))

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return monai.losses.TverskyLoss.forward(self, logits, labels)


#: how the Tversky index's sums and smoothing are taken: Abraham & Khan 2019 (arXiv:1810.07842) eq. (3)
#: sums over the pixels of one image with a small ε; their code (nabsabraham/focal-tversky-unet,
#: ``losses.py``: ``tversky``) flattens the whole batch (``K.flatten``) with ``smooth = 1``
FOCAL_TVERSKY_VARIANTS = {
    "paper": {"batch": False, "smooth_nr": 1e-5, "smooth_dr": 1e-5},
    "reference_code": {"batch": True, "smooth_nr": 1.0, "smooth_dr": 1.0},
}


class FocalTverskyLoss(SegmentationLoss):
    """Focal Tversky loss of Abraham & Khan 2019, eq. (4): ``mean_c (1 - TI_c)^(1/γ)``.

    ``TI_c = (TP_c + s) / (TP_c + α FN_c + β FP_c + s)`` is the Tversky index of eq. (3) (survey
    eq. 8, :class:`TverskyLoss`). The paper's ``γ = 4/3`` (exponent 0.75) keeps the gradient large
    when the index is already high, which helps small lesions; ``gamma=1`` is the Tversky loss. The
    paper's α = 0.7 weights false negatives, which is ``beta`` here (``alpha`` weights false
    positives, as in :class:`TverskyLoss`). The paper sums over classes; a mean keeps the scale of the
    other region losses (the same for one foreground class). Hand-written (MONAI has none) on top of
    MONAI's per-class Tversky index.

    ``variant`` (:data:`FOCAL_TVERSKY_VARIANTS`): ``paper`` takes the index per sample with
    ``s = 1e-5``; ``reference_code`` is the authors' ``focal_tversky`` (``losses.py`` of
    nabsabraham/focal-tversky-unet): one index over the whole flattened batch with ``s = 1``. For one
    foreground class (their binary sigmoid output) each variant is the source's formula exactly.

    Args:
        include_background: also average the loss of class 0.
        alpha: weight of false positives.
        beta: weight of false negatives.
        gamma: focal parameter; the exponent is ``1 / gamma``.
        variant: ``paper`` or ``reference_code``.
        batch: sum over the batch before the ratio; ``None``: the variant's.
        smooth_nr: added to the numerator; ``None``: the variant's.
        smooth_dr: added to the denominator; ``None``: the variant's.
    """

    loss_name = "focal_tversky"

    def __init__(self, include_background: bool = False, alpha: float = 0.3, beta: float = 0.7,
                 gamma: float = 4.0 / 3.0, variant: str = "paper", batch: bool | None = None,
                 smooth_nr: float | None = None, smooth_dr: float | None = None) -> None:
        super().__init__()
        if gamma <= 0:
            raise CTBenchError(f"loss 'focal_tversky': gamma={gamma} must be > 0 (1 gives the Tversky loss)")
        self.gamma = float(gamma)
        v = variant_settings(self.loss_name, variant, FOCAL_TVERSKY_VARIANTS,
                             {"batch": batch, "smooth_nr": smooth_nr, "smooth_dr": smooth_dr})
        self.tversky = TverskyLoss(include_background, alpha, beta, v["batch"], v["smooth_nr"], v["smooth_dr"],
                                   reduction="none")

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        per_class = self.tversky.compute(logits, labels)
        # clamp: x^(1/γ) has an infinite slope at 0 when γ > 1 (a perfect prediction)
        return per_class.clamp_min(1e-12).pow(1.0 / self.gamma).mean()
