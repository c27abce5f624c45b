"""Overlap losses on soft predictions: Dice (survey eq. 7), soft IoU (eq. 5), generalised Dice.

All three are MONAI's losses, which are exactly these definitions, behind ctbench's calling
convention (softmax of the logits, integer labels one-hot encoded over C classes). Each is computed
per sample and class, then averaged over both (``batch=True``: the sums run over the whole batch,
nnU-Net's "batch Dice").
"""

from __future__ import annotations

import monai.losses
import torch

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss, monai_region_args


class DiceLoss(SegmentationLoss, monai.losses.DiceLoss):
    """Dice loss of Milletari et al. 2016 (V-Net), survey eq. (7): ``1 - 2<p, p̂> / (|p| + |p̂|)``.

    MONAI's ``DiceLoss`` with softmax and one-hot targets. ``denominator="l2"`` is V-Net's squared
    form ``|p|² + |p̂|²``. V-Net is binary with the loss on the foreground channel only, so the
    background class is excluded by default.

    Args:
        include_background: also average the Dice loss of class 0.
        denominator: ``"l1"`` (sum of probabilities, eq. 7) or ``"l2"`` (sum of squares, V-Net).
        batch: sum over the batch before the ratio instead of one Dice per sample.
        smooth_nr: added to the numerator (keeps an empty class with an empty prediction at loss 0).
        smooth_dr: added to the denominator (avoids 0/0).
    """

    loss_name = "dice"

    def __init__(self, include_background: bool = False, denominator: str = "l1", batch: bool = False,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5) -> None:
        if denominator not in ("l1", "l2"):
            raise CTBenchError(f"loss '{self.loss_name}': denominator={denominator!r}; use 'l1' or 'l2'")
        super().__init__(**monai_region_args(include_background, batch, smooth_nr, smooth_dr,
                                             squared_pred=denominator == "l2"))

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return monai.losses.DiceLoss.forward(self, logits, labels)


class IoULoss(SegmentationLoss, monai.losses.DiceLoss):
    """Soft Jaccard (IoU) loss of Rahman & Wang 2016, survey eq. (5): ``1 - |X∩Y| / (|X| + |Y| - |X∩Y|)``.

    MONAI's ``DiceLoss(jaccard=True)`` with softmax and one-hot targets; the background class is
    excluded by default (the paper optimises the foreground IoU).

    Args:
        include_background: also average the IoU loss of class 0.
        batch: sum over the batch before the ratio instead of one IoU per sample.
        smooth_nr: added to the numerator.
        smooth_dr: added to the denominator.
    """

    loss_name = "iou"

    def __init__(
        self, include_background: bool = False, batch: bool = False, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5
    ) -> None:
        super().__init__(**monai_region_args(include_background, batch, smooth_nr, smooth_dr, jaccard=True))

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return monai.losses.DiceLoss.forward(self, logits, labels)


class GeneralizedDiceLoss(SegmentationLoss, monai.losses.GeneralizedDiceLoss):
    """Generalised Dice loss of Sudre et al. 2017: ``1 - 2 Σ_c w_c <p_c, p̂_c> / Σ_c w_c (|p_c| + |p̂_c|)``.

    ``w_c = 1 / (Σ p_c)²`` (``w_type="square"``, the paper's choice) so that small classes count as
    much as large ones. MONAI's ``GeneralizedDiceLoss``; a class absent from a sample gets the
    largest weight of the present ones (the paper leaves 1/0 undefined). The paper sums over both
    classes of a binary task, so the background is included by default.

    Args:
        include_background: include class 0 in the sums.
        w_type: ``"square"`` (1/volume²), ``"simple"`` (1/volume) or ``"uniform"``.
        batch: sum over the batch before the ratio.
        smooth_nr: added to the numerator.
        smooth_dr: added to the denominator.
    """

    loss_name = "generalized_dice"

    def __init__(self, include_background: bool = True, w_type: str = "square", batch: bool = False,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5) -> None:
        if w_type not in ("square", "simple", "uniform"):
            raise CTBenchError(f"loss '{self.loss_name}': w_type={w_type!r}; use 'square', 'simple' or 'uniform'")
        super().__init__(**monai_region_args(include_background, batch, smooth_nr, smooth_dr, w_type=w_type))

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return monai.losses.GeneralizedDiceLoss.forward(self, logits, labels)
