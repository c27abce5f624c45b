"""Exponential logarithmic loss of Wong et al. 2018."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss, as_weight, one_hot


class ExpLogLoss(SegmentationLoss):
    """Exponential logarithmic loss (Wong et al. 2018, MICCAI), for highly unbalanced object sizes.

    ``w_dice E_c[(-ln Dice_c)^γ_dice] + w_cross E_x[w_y (-ln p̂_y)^γ_cross]`` with the smoothed soft
    Dice ``Dice_c = (2 Σ p p̂ + ε) / (Σ (p + p̂) + ε)`` per sample and class (survey eq. 6-7) and the
    label weight ``w_l = (Σ_k f_k / f_l)^0.5`` from the label frequencies ``f``. The survey gives no
    equation; the paper's values are ``w_dice = 0.8``, ``w_cross = 0.2``, ``γ = 0.3``, ``ε = 1``, and
    its labels include the background. Hand-written: MONAI has no such loss.

    Args:
        w_dice: weight of the exponential logarithmic Dice term.
        w_cross: weight of the weighted exponential cross-entropy term.
        gamma_dice: exponent of ``-ln Dice``.
        gamma_cross: exponent of ``-ln p̂``.
        label_frequencies: one frequency (or voxel count) per class, background first, from the
            training set; ``None`` counts the labels of each batch.
        include_background: include class 0 in the Dice term.
        smooth: the additive smoothing ``ε`` of the Dice.
    """

    loss_name = "exp_log"

    def __init__(
        self,
        w_dice: float = 0.8,
        w_cross: float = 0.2,
        gamma_dice: float = 0.3,
        gamma_cross: float = 0.3,
        label_frequencies: Sequence[float] | None = None,
        include_background: bool = True,
        smooth: float = 1.0,
    ) -> None:
        super().__init__()
        if gamma_dice <= 0 or gamma_cross <= 0:
            raise CTBenchError(f"loss 'exp_log': gamma_dice={gamma_dice}, gamma_cross={gamma_cross} must be > 0")
        self.w_dice, self.w_cross = float(w_dice), float(w_cross)
        self.gamma_dice, self.gamma_cross = float(gamma_dice), float(gamma_cross)
        self.include_background = include_background
        self.smooth = float(smooth)
        self.register_buffer("weight", as_weight(label_frequencies))

    def label_weights(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """``w_l = (Σ_k f_k / f_l)^0.5``; classes absent from the counts get weight 0 (never used)."""
        if self.weight is not None:
            freq = self.weight.to(labels.device)
        else:
            freq = one_hot(labels, num_classes).sum(dim=(0, *range(2, labels.ndim)))
        return torch.where(freq > 0, (freq.sum() / freq.clamp_min(1e-12)).sqrt(), torch.zeros_like(freq))

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[1]
        log_p = F.log_softmax(logits, dim=1)
        probs, truth = log_p.exp(), one_hot(labels, num_classes)
        if not self.include_background:
            probs, truth = probs[:, 1:], truth[:, 1:]
        axes = tuple(range(2, probs.ndim))
        dice = (2 * (probs * truth).sum(axes) + self.smooth) / ((probs + truth).sum(axes) + self.smooth)
        # clamps: x^γ with γ < 1 has an infinite slope at x = 0 (a perfect prediction)
        dice_term = (-torch.log(dice.clamp(max=1.0))).clamp_min(1e-12).pow(self.gamma_dice).mean()
        neg_log_p = (-log_p.gather(1, labels)[:, 0]).clamp_min(1e-12).pow(self.gamma_cross)
        weight = self.label_weights(labels, num_classes)
        cross_term = (weight[labels[:, 0]] * neg_log_p).mean()
        return self.w_dice * dice_term + self.w_cross * cross_term
