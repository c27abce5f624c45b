from __future__ import annotations

import numpy as np
import pytest
import torch

from ctbench.losses.dice import DiceLoss
from ctbench.losses.tversky import FocalTverskyLoss, TverskyLoss


def _tversky_index_np(logits, labels, np_helpers, alpha, beta, smooth=1e-5):
    """Per sample and foreground class: TP / (TP + α FP + β FN)."""
    softmax_np, one_hot_np = np_helpers
    p = softmax_np(logits.double().numpy())[:, 1:]
    t = one_hot_np(labels.numpy(), logits.shape[1])[:, 1:]
    axes = tuple(range(2, p.ndim))
    tp, fp, fn = (p * t).sum(axes), (p * (1 - t)).sum(axes), ((1 - p) * t).sum(axes)
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


@pytest.mark.parametrize("alpha,beta", [(0.3, 0.7), (0.7, 0.3), (1.0, 1.0)])
def test_tversky_matches_eq8(pair, np_helpers, alpha, beta):
    logits, labels = pair
    expected = float((1 - _tversky_index_np(logits, labels, np_helpers, alpha, beta)).mean())
    assert TverskyLoss(alpha=alpha, beta=beta)(logits, labels).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("include_background", [False, True])
def test_tversky_half_half_is_dice(pair, include_background):
    logits, labels = pair
    kwargs = dict(include_background=include_background, smooth_nr=0.0, smooth_dr=0.0)
    tversky = TverskyLoss(alpha=0.5, beta=0.5, **kwargs)(logits, labels)
    assert tversky.item() == pytest.approx(DiceLoss(**kwargs)(logits, labels).item(), rel=1e-6)


def test_tversky_fn_weight_by_hand():
    # label (1, 1, 0, 0), p̂_fg = (1, 0, 0, 0) hard-ish: TP = 1, FP = 0, FN = 1 -> 1 - 1/(1 + β)
    logits = torch.tensor([[-50.0, 50.0], [50.0, -50.0], [50.0, -50.0], [50.0, -50.0]]).T.reshape(1, 2, 4, 1)
    labels = torch.tensor([1, 1, 0, 0]).view(1, 1, 4, 1)
    loss = TverskyLoss(alpha=0.3, beta=0.7, smooth_nr=0.0, smooth_dr=0.0)(logits, labels)
    assert loss.item() == pytest.approx(1 - 1 / 1.7, abs=1e-6)


@pytest.mark.parametrize("gamma", [1.0, 4.0 / 3.0, 2.0])
def test_focal_tversky_matches_abraham(pair, np_helpers, gamma):
    logits, labels = pair
    ti = _tversky_index_np(logits, labels, np_helpers, 0.3, 0.7)
    expected = float(((1 - ti) ** (1 / gamma)).mean())
    assert FocalTverskyLoss(gamma=gamma)(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_focal_tversky_gamma_one_is_tversky(pair):
    logits, labels = pair
    assert FocalTverskyLoss(gamma=1.0)(logits, labels).item() == pytest.approx(
        TverskyLoss()(logits, labels).item(), rel=1e-6
    )


def test_focal_tversky_raises_small_losses():
    # (1 - TI)^(3/4) > 1 - TI for 1 - TI < 1: a focal Tversky loss is never below the Tversky loss
    gen = torch.Generator().manual_seed(3)
    logits, labels = torch.randn(2, 2, 6, 6, generator=gen), torch.randint(0, 2, (2, 1, 6, 6), generator=gen)
    assert FocalTverskyLoss()(logits, labels).item() >= TverskyLoss()(logits, labels).item()
    assert np.isfinite(FocalTverskyLoss()(logits, labels).item())
