from __future__ import annotations

import monai.losses
import pytest

from ctbench.losses.combo import DiceCELoss
from ctbench.losses.cross_entropy import CrossEntropyLoss
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
