"""Cross-entropy losses: plain, weighted (survey eq. 1) and balanced (survey eq. 2).

The survey writes eq. (1) and (2) for a binary prediction ``p̂`` and label ``p``. With a softmax
over C classes the natural generalisation weights each voxel's ``-log p̂_y`` by a weight of its
true class ``y``; for C = 2 (``p̂ = softmax_1``, ``1 - p̂ = softmax_0``) it is exactly the survey's
equation. The mean is over voxels (the equation's per-pixel average), not PyTorch's
weight-normalised mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss, as_weight, one_hot


def voxel_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``-log softmax(logits)_y`` per voxel: ``[B, *spatial]``."""
    return F.cross_entropy(logits, labels[:, 0], reduction="none")


def class_frequencies(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Fraction of voxels of each class in each sample: ``[B, C]`` (deterministic on CUDA)."""
    return one_hot(labels, num_classes).flatten(2).mean(dim=2)


def foreground_weights(beta: float, num_classes: int, background: float = 1.0) -> torch.Tensor:
    """Class weights ``[background, beta, ..., beta]``."""
    weight = torch.full((num_classes,), float(beta))
    weight[0] = background
    return weight


def weighted_voxel_mean(voxel_loss: torch.Tensor, labels: torch.Tensor, class_weight: torch.Tensor) -> torch.Tensor:
    """Mean over voxels of ``class_weight[y] * voxel_loss``; ``class_weight`` is ``[C]`` or ``[B, C]``."""
    if class_weight.ndim == 1:
        return (class_weight.to(voxel_loss)[labels[:, 0]] * voxel_loss).mean()
    per_voxel = torch.gather(class_weight.to(voxel_loss), 1, labels.flatten(1)).view_as(voxel_loss)
    return (per_voxel * voxel_loss).mean()


class CrossEntropyLoss(SegmentationLoss):
    """Multi-class cross entropy ``-mean_x log p̂_y(x)`` (survey section 4.1).

    PyTorch's ``F.cross_entropy`` on the logits (MONAI has no separate CE loss; its ``DiceCELoss``
    uses the same function). For class weights use :class:`WeightedCrossEntropyLoss`.
    """

    loss_name = "ce"

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels[:, 0])


class WeightedCrossEntropyLoss(SegmentationLoss):
    """Weighted cross entropy, survey eq. (1): ``-(β p log p̂ + (1 - p) log(1 - p̂))``.

    Each voxel's ``-log p̂_y`` is weighted by its class: 1 for background and ``beta`` for every
    foreground class, or an explicit per-class ``weight``. ``beta > 1`` trades false negatives for
    false positives. Hand-written because the survey averages over voxels, whereas
    ``torch.nn.CrossEntropyLoss(weight=...)`` divides by the sum of the weights (which cancels a
    uniform ``beta`` on a foreground-only patch).

    Args:
        beta: weight of the foreground classes (background weight 1). Ignored if ``weight`` is given.
            Neither the survey nor the class-weighted CE it cites gives a value; 2 (a missed
            foreground voxel costs twice a false one) is ctbench's default, here and in ``wce.yaml``.
        weight: one weight per class, background first; ``None`` uses ``beta``.
    """

    loss_name = "wce"

    def __init__(self, beta: float = 2.0, weight: Sequence[float] | None = None) -> None:
        super().__init__()
        if beta < 0:
            raise CTBenchError(f"loss 'wce': beta={beta} must be >= 0; use beta > 1 to penalise false negatives")
        self.beta = float(beta)
        self.register_buffer("weight", as_weight(weight))

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.weight is not None else foreground_weights(self.beta, logits.shape[1])
        return weighted_voxel_mean(voxel_cross_entropy(logits, labels), labels, weight)


class BalancedCrossEntropyLoss(SegmentationLoss):
    """Balanced cross entropy of Xie & Tu 2015 (HED), survey eq. (2).

    ``-(β p log p̂ + (1 - β)(1 - p) log(1 - p̂))``: foreground classes weighted by ``β``, background by
    ``1 - β``. With ``beta=None`` (the paper's choice) ``β = |Y-|/|Y|`` is computed per sample, i.e.
    each class ``c`` is weighted by ``1 - frequency(c)`` in its sample; for C = 2 this is exactly
    eq. (2). Hand-written: MONAI has no balanced CE.

    Args:
        beta: fixed weight of the foreground classes in [0, 1], or ``None`` for the per-sample
            class balance of HED.
    """

    loss_name = "bce"

    def __init__(self, beta: float | None = None) -> None:
        super().__init__()
        if beta is not None and not 0.0 <= beta <= 1.0:
            raise CTBenchError(f"loss 'bce': beta={beta} must be in [0, 1] (or null for the per-sample balance)")
        self.beta = beta

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[1]
        if self.beta is None:
            weight = 1.0 - class_frequencies(labels, num_classes)
        else:
            weight = foreground_weights(self.beta, num_classes, background=1.0 - self.beta)
        return weighted_voxel_mean(voxel_cross_entropy(logits, labels), labels, weight)
