"""How much a soft Dice loss penalises false positives on a patch that lacks the class.

The study's Dice loss (``configs/loss/dice.yaml``: ``batch: false``, smoothing 1e-5) is computed per patch and
class (Milletari et al. 2016, 1 - 2|P.G| / (|P| + |G|)). On a patch whose ground truth lacks a class, the
class's term is 1 - s / (|P| + s), already about 1 once the softmax gives the class any probability, so
predicting the class over a whole region of that patch hardly changes the loss or its gradient. With
``batch: true`` (one Dice per class over the batch, as nnU-Net's batch Dice) the same false positives enlarge
|P| of a term whose G is not empty. This script measures both on two 2D patches, one with the class and one
without, and prints the mean gradient on the false-positive region (``docs/survey-reproduction.md``, C18a and the
*Sensitivity to the Dice formulation*; it does not explain Dice loss's seed 2 losing the spleen, which the batch
formulation's seed 2 does as well).

    python scripts/dice_empty_patch_gradient.py
"""

from __future__ import annotations

import torch

from ctbench.losses.dice import DiceLoss


def case(false_positive_logit: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 64x64 patches, classes background/organ/small: the small class lies in patch 1 only; patch 0's
    top-right quadrant gets ``false_positive_logit`` on the small class (0: no false positive)."""
    label = torch.zeros(2, 1, 64, 64, dtype=torch.long)
    label[:, 0, 40:60, 40:60] = 1
    label[1, 0, 10:30, 10:30] = 2
    logits = torch.zeros(2, 3, 64, 64)
    logits[:, 0] = 2.0
    logits[1, 2, 10:30, 10:30] = 4.0
    logits[0, 2, :32, 32:] = false_positive_logit
    return logits.requires_grad_(True), label


def main() -> None:
    print(f"{'Dice over':<10} {'false positive':>15} {'loss':>8} {'mean |grad| on the false-positive region':>42}")
    for batch in (False, True):
        loss_fn = DiceLoss(include_background=False, denominator="l1", batch=batch, smooth_nr=1e-5, smooth_dr=1e-5)
        for logit in (0.0, 4.5):
            logits, label = case(logit)
            loss = loss_fn(logits, label)
            (grad,) = torch.autograd.grad(loss, logits)
            region = grad[0, 2, :32, 32:].abs().mean().item()
            print(f"{'batch' if batch else 'patch':<10} {'yes' if logit else 'no':>15} {loss.item():>8.4f} {region:>42.2e}")


if __name__ == "__main__":
    main()
