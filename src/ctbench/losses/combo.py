"""Compound losses: a pixel-wise term plus an overlap term (Dice + CE of nnU-Net, Combo, Dice + TopK, Dice + focal)."""

from __future__ import annotations

import torch

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss, one_hot
from ctbench.losses.cross_entropy import BalancedCrossEntropyLoss, CrossEntropyLoss
from ctbench.losses.dice import DiceLoss
from ctbench.losses.focal import FocalLoss
from ctbench.losses.topk import TopKLoss


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

    def __init__(self, include_background: bool = False, denominator: str = "l1", batch: bool = False,
                 lambda_dice: float = 1.0, lambda_ce: float = 1.0) -> None:
        super().__init__()
        self.dice = DiceLoss(include_background=include_background, denominator=denominator, batch=batch)
        self.ce = CrossEntropyLoss()
        self.lambda_dice = lambda_dice
        self.lambda_ce = lambda_ce

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.lambda_dice * self.dice.compute(logits, labels) + self.lambda_ce * self.ce.compute(logits, labels)


#: Taghanaki et al. 2018 (arXiv:1805.02798) eq. (3) against the authors' code (asgsaeid/ComboLoss,
#: ``combo_loss.py``: ``Combo_loss``), see :class:`ComboLoss`
COMBO_VARIANTS = ("paper", "reference_code")


class ComboLoss(SegmentationLoss):
    """Combo loss of Taghanaki et al. 2018 (survey section 4.5): ``α L_mBCE - (1 - α) Dice``.

    ``variant="paper"`` is eq. (3): ``L_mBCE = -mean(β p log p̂ + (1 - β)(1 - p) log(1 - p̂))``, the
    balanced cross entropy of survey eq. (2) (:class:`~ctbench.losses.cross_entropy.BalancedCrossEntropyLoss`
    with fixed ``beta``; ``β > 0.5`` penalises false negatives more), and ``Dice`` the soft Dice
    coefficient per sample (``1 -`` :class:`~ctbench.losses.dice.DiceLoss`, smoothing 1e-5), averaged
    over classes where the paper sums over them (the same for one foreground class), so ``alpha``
    means the same for any C.

    ``variant="reference_code"`` is the authors' ``Combo_loss`` (``combo_loss.py`` of
    asgsaeid/ComboLoss), which differs from their equation: the class weight multiplies *both* CE
    terms, ``-β (p log p̂ + (1 - β)(1 - p) log(1 - p̂))``, with ``p̂`` clipped to ``[1e-7, 1 - 1e-7]``
    (Keras' epsilon); the Dice is ``(2 Σ p p̂ + 1) / (Σ p + Σ p̂ + 1)`` over the whole flattened batch.
    Their output is one sigmoid map; here each Dice class (the foreground ones by default) is scored
    one-vs-rest on its softmax channel with that formula and the classes are averaged, so for one
    foreground class it is their function exactly.

    The loss lies in ``[-1, ∞)``: ``alpha=1`` is the cross-entropy term, ``alpha=0`` is ``-Dice``.
    Hand-written: MONAI has no Combo loss.

    Args:
        alpha: weight of the cross-entropy term (``1 - alpha`` for the Dice term).
        beta: weight of foreground voxels in the cross entropy (see the variants for background).
        include_background: include class 0 in the Dice term (and, for ``reference_code``, the CE).
        variant: ``paper`` or ``reference_code``.
    """

    loss_name = "combo"

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, include_background: bool = False,
                 variant: str = "paper") -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise CTBenchError(f"loss 'combo': alpha={alpha} must be in [0, 1] (weight of the CE term)")
        if variant not in COMBO_VARIANTS:
            raise CTBenchError(f"loss 'combo' has no variant '{variant}': set loss.variant to one of "
                               f"{', '.join(COMBO_VARIANTS)}")
        self.alpha, self.beta, self.variant = float(alpha), float(beta), variant
        self.include_background = include_background
        self.ce = BalancedCrossEntropyLoss(beta=beta)
        self.dice = DiceLoss(include_background=include_background)

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.variant == "reference_code":
            return self._reference_code(logits, labels)
        dice_coefficient = 1.0 - self.dice.compute(logits, labels)
        return self.alpha * self.ce.compute(logits, labels) - (1.0 - self.alpha) * dice_coefficient

    def _reference_code(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """asgsaeid/ComboLoss ``Combo_loss`` per class channel (one-vs-rest, batch flattened), averaged."""
        first = 0 if self.include_background else 1
        probs = torch.softmax(logits, 1)[:, first:].transpose(0, 1).flatten(1)  # [classes, B * voxels]
        truth = one_hot(labels, logits.shape[1])[:, first:].transpose(0, 1).flatten(1)
        dice = (2.0 * (truth * probs).sum(1) + 1.0) / (truth.sum(1) + probs.sum(1) + 1.0)
        clipped = probs.clamp(1e-7, 1.0 - 1e-7)
        ce = -(self.beta * (truth * torch.log(clipped) + (1.0 - self.beta) * (1.0 - truth) * torch.log(1.0 - clipped)))
        return (self.alpha * ce.mean(1) - (1.0 - self.alpha) * dice).mean()


class DiceTopKLoss(SegmentationLoss):
    """Dice + TopK (Ma et al. 2021, "Loss odyssey"; nnU-Net's ``DC_and_topk_loss``): ``lambda_dice · Dice +
    lambda_topk · TopK(k)``, the soft Dice of the foreground (survey eq. 7) plus the cross entropy of the
    ``k`` % hardest voxels (:class:`~ctbench.losses.topk.TopKLoss`). One of the best two losses on liver
    and multi-organ CT in Ma et al.'s benchmark.

    Args:
        k: percentage of voxels kept by the TopK term (nnU-Net: 10).
        include_background: include class 0 in the Dice term.
        lambda_dice: weight of the Dice term.
        lambda_topk: weight of the TopK term.
    """

    loss_name = "dice_topk"

    def __init__(self, k: float = 10.0, include_background: bool = False, lambda_dice: float = 1.0,
                 lambda_topk: float = 1.0) -> None:
        super().__init__()
        self.dice = DiceLoss(include_background=include_background)
        self.topk = TopKLoss(k=k)
        self.lambda_dice, self.lambda_topk = lambda_dice, lambda_topk

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (self.lambda_dice * self.dice.compute(logits, labels)
                + self.lambda_topk * self.topk.compute(logits, labels))


class DiceFocalLoss(SegmentationLoss):
    """Dice + focal (Zhu et al. 2019, AnatomyNet; in Ma et al. 2021's benchmark): ``lambda_dice · Dice +
    lambda_focal · Focal(alpha, gamma)`` with ctbench's focal loss (survey eq. 4,
    :class:`~ctbench.losses.focal.FocalLoss`). ``alpha=0.5, gamma=2`` as the loss benchmark's code
    (JunMa11/SegLoss ``FocalLoss(alpha=0.5, gamma=2)``: every class weighted 0.5). Not MONAI's
    ``DiceFocalLoss``, whose focal term is averaged over the class axis too.

    Args:
        alpha: focal foreground weight (background ``1 - alpha``; ``null``: unweighted).
        gamma: focusing parameter.
        include_background: include class 0 in the Dice term.
        lambda_dice: weight of the Dice term.
        lambda_focal: weight of the focal term.
    """

    loss_name = "dice_focal"

    def __init__(self, alpha: float | None = 0.5, gamma: float = 2.0, include_background: bool = False,
                 lambda_dice: float = 1.0, lambda_focal: float = 1.0) -> None:
        super().__init__()
        self.dice = DiceLoss(include_background=include_background)
        self.focal = FocalLoss(alpha=alpha, gamma=gamma)
        self.lambda_dice, self.lambda_focal = lambda_dice, lambda_focal

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (self.lambda_dice * self.dice.compute(logits, labels)
                + self.lambda_focal * self.focal.compute(logits, labels))
