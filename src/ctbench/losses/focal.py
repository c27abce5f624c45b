"""Focal loss of Lin et al. 2017, survey eq. (4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss
from ctbench.losses.cross_entropy import foreground_weights, weighted_voxel_mean


class FocalLoss(SegmentationLoss):
    """Focal loss (Lin et al. 2017), survey eq. (4).

    ``-(α (1 - p̂)^γ p log p̂ + (1 - α) p̂^γ (1 - p) log(1 - p̂))``, generalised to a softmax over C
    classes as ``-α_y (1 - p̂_y)^γ log p̂_y`` with ``α_y = α`` for foreground and ``1 - α`` for
    background (exactly eq. 4 for C = 2), averaged over voxels. ``gamma=0`` is balanced CE
    (:class:`~ctbench.losses.cross_entropy.BalancedCrossEntropyLoss` with ``beta=alpha``);
    ``gamma=0, alpha=0.5`` is half the cross entropy. Hand-written because MONAI's ``FocalLoss``
    averages over the class axis too, so its ``gamma=0`` case is CE divided by C.

    Args:
        alpha: weight of the foreground classes (background ``1 - alpha``); ``None`` for no
            class weighting. The paper's 0.25 goes with ``gamma=2``.
        gamma: focusing parameter; larger values down-weight well-classified voxels.
    """

    loss_name = "focal"

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise CTBenchError(f"loss 'focal': alpha={alpha} must be in [0, 1] (or null for no class weighting)")
        if gamma < 0:
            raise CTBenchError(f"loss 'focal': gamma={gamma} must be >= 0 (0 gives balanced cross entropy)")
        self.alpha = alpha
        self.gamma = float(gamma)

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1).gather(1, labels)[:, 0]
        # clamp: (1 - p)^γ has an infinite slope at p = 1 when γ < 1
        modulator = (-torch.expm1(log_p)).clamp_min(1e-12).pow(self.gamma)
        voxel_loss = -modulator * log_p
        if self.alpha is None:
            return voxel_loss.mean()
        weight = foreground_weights(self.alpha, logits.shape[1], background=1.0 - self.alpha)
        return weighted_voxel_mean(voxel_loss, labels, weight)
