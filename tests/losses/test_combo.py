from __future__ import annotations

import monai.losses
import numpy as np
import pytest
import torch

from ctbench.losses.combo import ComboLoss, DiceCELoss
from ctbench.losses.cross_entropy import BalancedCrossEntropyLoss, CrossEntropyLoss
from ctbench.losses.dice import DiceLoss


@pytest.mark.parametrize("lambda_dice,lambda_ce", [(1.0, 1.0), (0.3, 2.0)])
def test_dice_ce_is_weighted_sum(pair, lambda_dice, lambda_ce):
    logits, labels = pair
    expected = lambda_dice * DiceLoss()(logits, labels) + lambda_ce * CrossEntropyLoss()(logits, labels)
    loss = DiceCELoss(lambda_dice=lambda_dice, lambda_ce=lambda_ce)
    assert loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_dice_ce_equals_monai(pair):
    logits, labels = pair
    ref = monai.losses.DiceCELoss(include_background=False, to_onehot_y=True, softmax=True)(logits, labels)
    assert DiceCELoss()(logits, labels).item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("beta", [0.3, 0.5, 0.8])
def test_combo_alpha_one_is_balanced_ce(pair, beta):
    logits, labels = pair
    expected = BalancedCrossEntropyLoss(beta=beta)(logits, labels).item()
    assert ComboLoss(alpha=1.0, beta=beta)(logits, labels).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("include_background", [False, True])
def test_combo_alpha_zero_is_minus_dice(pair, include_background):
    logits, labels = pair
    dice_loss = DiceLoss(include_background=include_background)(logits, labels).item()
    combo = ComboLoss(alpha=0.0, include_background=include_background)(logits, labels).item()
    assert combo == pytest.approx(dice_loss - 1.0, rel=1e-6)


def test_combo_binary_matches_paper(np_helpers):
    # α (-mean(β t ln p + (1-β)(1-t) ln(1-p))) - (1-α) (2Σpt + s)/(Σp + Σt + s), binary, one sample
    softmax_np, _ = np_helpers
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(1, 2, 6, 6, generator=gen)
    labels = torch.randint(0, 2, (1, 1, 6, 6), generator=gen)
    p = softmax_np(logits.double().numpy())[0, 1]
    t = labels[0, 0].double().numpy()
    alpha, beta, s = 0.4, 0.7, 1e-5
    ce = -(beta * t * np.log(p) + (1 - beta) * (1 - t) * np.log(1 - p)).mean()
    dice = (2 * (p * t).sum() + s) / (p.sum() + t.sum() + s)
    expected = alpha * ce - (1 - alpha) * dice
    assert ComboLoss(alpha=alpha, beta=beta)(logits, labels).item() == pytest.approx(expected, rel=1e-5)
