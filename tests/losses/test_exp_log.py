from __future__ import annotations

import numpy as np
import pytest
import torch

from ctbench.losses.exp_log import ExpLogLoss


def _exp_log_np(logits, labels, np_helpers, freq=None, include_background=True):
    softmax_np, one_hot_np = np_helpers
    p = softmax_np(logits.double().numpy())
    t = one_hot_np(labels.numpy(), p.shape[1])
    lab = labels[:, 0].long().numpy()
    freq = np.bincount(lab.ravel(), minlength=p.shape[1]).astype(float) if freq is None else np.asarray(freq)
    w = np.sqrt(freq.sum() / freq)
    pd, td = (p, t) if include_background else (p[:, 1:], t[:, 1:])
    axes = tuple(range(2, p.ndim))
    dice = (2 * (pd * td).sum(axes) + 1) / ((pd + td).sum(axes) + 1)
    dice_term = ((-np.log(dice)) ** 0.3).mean()
    p_true = (p * t).sum(1)
    cross_term = (w[lab] * (-np.log(p_true)) ** 0.3).mean()
    return 0.8 * dice_term + 0.2 * cross_term


@pytest.mark.parametrize("include_background", [True, False])
def test_exp_log_matches_wong(pair, np_helpers, include_background):
    logits, labels = pair
    expected = _exp_log_np(logits, labels, np_helpers, include_background=include_background)
    loss = ExpLogLoss(include_background=include_background)
    assert loss(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_exp_log_dataset_frequencies(pair, np_helpers):
    logits, labels = pair
    freq = [0.9, 0.08, 0.02]
    expected = _exp_log_np(logits, labels, np_helpers, freq=freq)
    assert ExpLogLoss(label_frequencies=freq)(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_exp_log_rare_label_weighs_more(np_helpers):
    # frequencies (3/4, 1/4): w = sqrt(1/f) -> (1.1547, 2)
    loss = ExpLogLoss()
    labels = torch.tensor([0, 0, 0, 1]).view(1, 1, 4, 1)
    weight = loss.label_weights(labels, 2)
    assert weight.tolist() == pytest.approx([np.sqrt(4 / 3), 2.0], rel=1e-6)
