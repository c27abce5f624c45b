from __future__ import annotations

import numpy as np
import pytest
import torch

from ctbench.losses.cross_entropy import BalancedCrossEntropyLoss, CrossEntropyLoss
from ctbench.losses.focal import FocalLoss


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (0.6, 1.0), (0.5, 0.5)])
def test_binary_focal_is_eq4(alpha, gamma):
    # survey eq. (4) with p̂ = P(foreground) and p the binary label, averaged over voxels
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 5, 5, generator=gen) * 3
    labels = torch.randint(0, 2, (2, 1, 5, 5), generator=gen)
    p_hat = torch.softmax(logits.double(), 1)[:, 1].numpy()
    p = labels[:, 0].double().numpy()
    eq4 = -(alpha * (1 - p_hat) ** gamma * p * np.log(p_hat) + (1 - alpha) * p_hat**gamma * (1 - p) * np.log(1 - p_hat))
    assert FocalLoss(alpha, gamma)(logits, labels).item() == pytest.approx(eq4.mean(), rel=1e-5)


def test_multiclass_focal_matches_numpy(pair, np_helpers):
    logits, labels = pair
    softmax_np, one_hot_np = np_helpers
    p = softmax_np(logits.double().numpy())
    t = one_hot_np(labels.numpy(), 3)
    alpha = np.array([0.75, 0.25, 0.25]).reshape(1, 3, *([1] * (p.ndim - 2)))
    expected = -(alpha * t * (1 - p) ** 2 * np.log(p)).sum(1).mean()
    assert FocalLoss(0.25, 2.0)(logits, labels).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("alpha", [0.1, 0.25, 0.9])
def test_gamma_zero_is_balanced_ce(pair, alpha):
    logits, labels = pair
    assert FocalLoss(alpha, 0.0)(logits, labels).item() == pytest.approx(
        BalancedCrossEntropyLoss(beta=alpha)(logits, labels).item(), rel=1e-6
    )


def test_gamma_zero_alpha_half_is_half_ce(pair):
    logits, labels = pair
    ce = CrossEntropyLoss()(logits, labels).item()
    assert FocalLoss(0.5, 0.0)(logits, labels).item() == pytest.approx(0.5 * ce, rel=1e-6)
    assert FocalLoss(None, 0.0)(logits, labels).item() == pytest.approx(ce, rel=1e-6)


def test_focusing_lowers_easy_voxels():
    # a confident correct voxel (p̂ = 0.9) costs (0.1)^2 of its CE
    logits = torch.tensor([0.0, np.log(9.0)]).view(1, 2, 1, 1)
    labels = torch.ones(1, 1, 1, 1)
    assert FocalLoss(None, 2.0)(logits, labels).item() == pytest.approx(0.01 * -np.log(0.9), rel=1e-5)
