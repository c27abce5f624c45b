from __future__ import annotations

import pytest
import torch

from ctbench.losses.dice import DiceLoss, GeneralizedDiceLoss, IoULoss


def _overlap_np(logits, labels, np_helpers, include_background, power=1, jaccard=False, smooth=1e-5):
    """Mean over samples and classes of 1 - (2)I/(denominator), float64."""
    softmax_np, one_hot_np = np_helpers
    p = softmax_np(logits.double().numpy())
    t = one_hot_np(labels.numpy(), p.shape[1])
    if not include_background:
        p, t = p[:, 1:], t[:, 1:]
    axes = tuple(range(2, p.ndim))
    inter = (p * t).sum(axes)
    size = (p**power).sum(axes) + (t**power).sum(axes)
    if jaccard:
        return float((1 - (inter + smooth) / (size - inter + smooth)).mean())
    return float((1 - (2 * inter + smooth) / (size + smooth)).mean())


@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("denominator,power", [("l1", 1), ("l2", 2)])
def test_dice_matches_eq7(pair, np_helpers, include_background, denominator, power):
    logits, labels = pair
    loss = DiceLoss(include_background=include_background, denominator=denominator)
    expected = _overlap_np(logits, labels, np_helpers, include_background, power)
    assert loss(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_dice_by_hand():
    # binary, 4 voxels, label (1, 1, 0, 0), p̂_fg = (0.5, 0.5, 0.5, 0.5): Dice = 2*1/(2+2) = 0.5
    logits = torch.zeros(1, 2, 4, 1)
    labels = torch.tensor([1, 1, 0, 0]).view(1, 1, 4, 1)
    assert DiceLoss(smooth_nr=0, smooth_dr=0)(logits, labels).item() == pytest.approx(0.5, abs=1e-6)


def test_dice_batch_sums_over_batch(np_helpers):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 6, 6, generator=gen)
    labels = torch.randint(0, 2, (2, 1, 6, 6), generator=gen)
    softmax_np, one_hot_np = np_helpers
    p, t = softmax_np(logits.double().numpy())[:, 1], one_hot_np(labels.numpy(), 2)[:, 1]
    expected = 1 - (2 * (p * t).sum() + 1e-5) / (p.sum() + t.sum() + 1e-5)
    assert DiceLoss(batch=True)(logits, labels).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("include_background", [False, True])
def test_iou_matches_eq5(pair, np_helpers, include_background):
    logits, labels = pair
    expected = _overlap_np(logits, labels, np_helpers, include_background, jaccard=True)
    assert IoULoss(include_background=include_background)(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_iou_by_hand():
    # label (1, 1, 0, 0), p̂_fg = 0.5 everywhere: I = 1, |X| + |Y| - I = 2 + 2 - 1 = 3 -> loss 2/3
    logits = torch.zeros(1, 2, 4, 1)
    labels = torch.tensor([1, 1, 0, 0]).view(1, 1, 4, 1)
    assert IoULoss(smooth_nr=0, smooth_dr=0)(logits, labels).item() == pytest.approx(2 / 3, abs=1e-6)


def test_generalized_dice_matches_sudre(pair, np_helpers):
    logits, labels = pair
    softmax_np, one_hot_np = np_helpers
    p = softmax_np(logits.double().numpy())
    t = one_hot_np(labels.numpy(), 3)
    axes = tuple(range(2, p.ndim))
    w = 1 / t.sum(axes) ** 2  # every class is present in these random labels
    numer = 2 * (w * (p * t).sum(axes)).sum(1) + 1e-5
    denom = (w * (p.sum(axes) + t.sum(axes))).sum(1) + 1e-5
    expected = float((1 - numer / denom).mean())
    assert GeneralizedDiceLoss()(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_generalized_dice_uniform_two_classes_by_hand():
    # uniform weights, label (1, 1, 0, 0), p̂ = 0.5: 2 (1 + 1) / ((2 + 2) + (2 + 2)) = 0.5
    logits = torch.zeros(1, 2, 4, 1)
    labels = torch.tensor([1, 1, 0, 0]).view(1, 1, 4, 1)
    loss = GeneralizedDiceLoss(w_type="uniform", smooth_nr=0, smooth_dr=0)
    assert loss(logits, labels).item() == pytest.approx(0.5, abs=1e-6)
