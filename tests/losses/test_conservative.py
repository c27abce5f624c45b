from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctbench.losses.conservative import ConservativeLoss


@pytest.mark.parametrize("lam,base", [(5.0, math.e), (1.0, 2.0), (2.0, 10.0)])
def test_conservative_matches_zhu(pair, np_helpers, lam, base):
    logits, labels = pair
    softmax_np, one_hot_np = np_helpers
    p = (softmax_np(logits.double().numpy()) * one_hot_np(labels.numpy(), 3)).sum(1)
    neg_log_a = np.maximum(-np.log(p) / np.log(base), 1e-4)  # the documented clamp near p̂ = 1
    expected = (lam * (1 - neg_log_a) ** 2 * np.log(neg_log_a) / np.log(base)).mean()
    assert ConservativeLoss(lam, base)(logits, labels).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("base", [math.e, 2.0])
def test_conservative_zero_and_flat_at_one_over_a(base):
    # two classes, logits (0, z) with softmax_1 = 1/a -> CL = 0 and dCL/dz = 0
    z = torch.tensor(math.log(1 / (base - 1)), requires_grad=True)
    logits = torch.stack([torch.zeros(()), z]).view(1, 2, 1, 1)
    loss = ConservativeLoss(base=base)(logits, torch.ones(1, 1, 1, 1))
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert z.grad.item() == pytest.approx(0.0, abs=1e-5)


def test_conservative_by_hand():
    # p̂ = e^-2: log p̂ = -2 -> 5 (1 - 2)^2 ln 2
    logits = torch.tensor([math.log(1 - math.exp(-2.0)), -2.0]).view(1, 2, 1, 1)
    assert ConservativeLoss()(logits, torch.ones(1, 1, 1, 1)).item() == pytest.approx(5 * math.log(2.0), rel=1e-5)
