from __future__ import annotations

import numpy as np
import pytest
import torch

from ctbench.losses.cross_entropy import BalancedCrossEntropyLoss, CrossEntropyLoss, WeightedCrossEntropyLoss


def _ce_np(logits, labels, class_weight, np_helpers):
    """-mean_x w[y] log p̂_y, class_weight [C] or [B, C]."""
    softmax_np, one_hot_np = np_helpers
    p = softmax_np(logits.double().numpy())
    t = one_hot_np(labels.numpy(), p.shape[1])
    w = np.asarray(class_weight, dtype=np.float64)
    w = w.reshape((1, -1) + (1,) * (p.ndim - 2)) if w.ndim == 1 else w.reshape(w.shape + (1,) * (p.ndim - 2))
    return float(-(w * t * np.log(p)).sum(axis=1).mean())


def test_ce_matches_numpy(pair, np_helpers):
    logits, labels = pair
    expected = _ce_np(logits, labels, [1.0, 1.0, 1.0], np_helpers)
    assert CrossEntropyLoss()(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_ce_by_hand():
    # one voxel, logits (0, log 3): p̂ = (1/4, 3/4); label 1 -> -log(3/4)
    logits = torch.tensor([0.0, np.log(3.0)]).view(1, 2, 1, 1)
    assert CrossEntropyLoss()(logits, torch.ones(1, 1, 1, 1)).item() == pytest.approx(-np.log(0.75), rel=1e-6)


@pytest.mark.parametrize("beta", [0.5, 1.0, 4.0])
def test_wce_beta_matches_eq1(pair, np_helpers, beta):
    logits, labels = pair
    expected = _ce_np(logits, labels, [1.0, beta, beta], np_helpers)
    assert WeightedCrossEntropyLoss(beta=beta)(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_wce_binary_is_eq1_by_hand():
    # p̂ = sigmoid(z1 - z0); eq. (1): -(β p log p̂ + (1 - p) log(1 - p̂)) averaged over the 2 voxels
    logits = torch.tensor([[0.0, 1.0], [0.0, -2.0]]).T.reshape(1, 2, 2, 1)  # voxel 0: z=(0,1), voxel 1: (1,-2)
    labels = torch.tensor([1, 0]).view(1, 1, 2, 1)
    p_hat = torch.softmax(logits, 1)[0, 1, :, 0].double().numpy()
    beta = 3.0
    expected = -(beta * np.log(p_hat[0]) + np.log(1 - p_hat[1])) / 2
    assert WeightedCrossEntropyLoss(beta=beta)(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_wce_explicit_weight(pair, np_helpers):
    logits, labels = pair
    expected = _ce_np(logits, labels, [0.2, 1.0, 3.0], np_helpers)
    loss = WeightedCrossEntropyLoss(weight=[0.2, 1.0, 3.0])
    assert loss(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_wce_beta_one_is_ce(pair):
    logits, labels = pair
    assert WeightedCrossEntropyLoss(beta=1.0)(logits, labels).item() == pytest.approx(
        CrossEntropyLoss()(logits, labels).item(), rel=1e-6
    )


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9])
def test_bce_fixed_beta_matches_eq2(pair, np_helpers, beta):
    logits, labels = pair
    expected = _ce_np(logits, labels, [1 - beta, beta, beta], np_helpers)
    assert BalancedCrossEntropyLoss(beta=beta)(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_bce_auto_beta_is_per_sample_negative_fraction(np_helpers):
    # binary, sample 0: 1 of 16 voxels foreground -> β = 15/16; sample 1: 4 of 16 -> β = 12/16
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 4, 4, generator=gen)
    labels = torch.zeros(2, 1, 4, 4)
    labels[0, 0, 0, 0] = 1
    labels[1, 0, :2, :2] = 1
    weight = np.array([[1 / 16, 15 / 16], [4 / 16, 12 / 16]])
    expected = _ce_np(logits, labels, weight, np_helpers)
    assert BalancedCrossEntropyLoss()(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_bce_half_is_half_ce(pair):
    logits, labels = pair
    assert BalancedCrossEntropyLoss(beta=0.5)(logits, labels).item() == pytest.approx(
        0.5 * CrossEntropyLoss()(logits, labels).item(), rel=1e-6
    )
