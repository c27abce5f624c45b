"""The loss benchmark's losses (issue 24): TopK, Dice + TopK, Dice + focal, boundary, Hausdorff DT, each on a
case computed by hand (one row of voxels, two classes: class 1's probability is given per voxel)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from ctbench.errors import CTBenchError
from ctbench.losses.boundary import BoundaryLoss, signed_distance
from ctbench.losses.combo import DiceFocalLoss, DiceTopKLoss
from ctbench.losses.dice import GeneralizedDiceLoss
from ctbench.losses.hausdorff import HausdorffDTLoss
from ctbench.losses.topk import TopKLoss


def row(p_foreground: list[float], labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """2D logits ``[1, 2, 1, W]`` whose softmax gives class 1 the probabilities ``p_foreground``, labels ``[1, 1, 1, W]``."""
    p = torch.tensor(p_foreground, dtype=torch.float64)
    logits = torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))])[None, :, None].float()
    return logits, torch.tensor(labels)[None, None, None]


P, Y = [0.9, 0.6, 0.8, 0.5, 0.99], [1, 1, 0, 0, 1]
P_TRUE = [0.9, 0.6, 0.2, 0.5, 0.99]                     # probability of each voxel's true class
DICE = 1 - (2 * (0.9 + 0.6 + 0.99) + 1e-5) / (3 + sum(P) + 1e-5)   # foreground soft Dice loss: 0.266569


def test_topk_is_the_mean_ce_of_the_hardest_k_percent():
    logits, labels = row(P, Y)
    # k = 40 % of 5 voxels: the two largest CEs, -log 0.2 and -log 0.5
    assert TopKLoss(k=40)(logits, labels).item() == pytest.approx((-math.log(0.2) - math.log(0.5)) / 2, rel=1e-5)
    assert TopKLoss(k=100)(logits, labels).item() == pytest.approx(-sum(map(math.log, P_TRUE)) / 5, rel=1e-5)
    assert TopKLoss(k=1)(logits, labels).item() == pytest.approx(-math.log(0.2), rel=1e-5)  # at least one voxel


def test_topk_takes_the_k_percent_over_the_whole_batch():
    a, b = row(P, Y), row([0.5, 0.5, 0.5, 0.5, 0.5], [1, 1, 1, 1, 1])
    logits, labels = torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])
    # 20 % of 10 voxels: -log 0.2 (sample 1) and one -log 0.5 of either sample
    assert TopKLoss(k=20)(logits, labels).item() == pytest.approx((-math.log(0.2) - math.log(0.5)) / 2, rel=1e-5)


def test_dice_topk_adds_the_foreground_dice_and_topk():
    logits, labels = row(P, Y)
    expected = DICE + (-math.log(0.2) - math.log(0.5)) / 2       # 0.266569 + 1.151293
    assert DiceTopKLoss(k=40)(logits, labels).item() == pytest.approx(expected, rel=1e-5)
    assert DiceTopKLoss(k=40, lambda_dice=0.0, lambda_topk=2.0)(logits, labels).item() == pytest.approx(
        2 * (expected - DICE), rel=1e-5)


def test_dice_focal_adds_the_foreground_dice_and_focal():
    logits, labels = row(P, Y)
    focal = sum(-0.5 * (1 - p) ** 2 * math.log(p) for p in P_TRUE) / 5   # alpha 0.5 on every class, gamma 2
    assert DiceFocalLoss()(logits, labels).item() == pytest.approx(DICE + focal, rel=1e-5)


def test_signed_distance_is_negative_inside_and_zero_on_the_inner_boundary():
    truth = torch.tensor([0, 1, 1, 1, 1, 0], dtype=torch.float32)[None, None, None]
    assert signed_distance(truth)[0, 0, 0].tolist() == [1, 0, -1, -1, 0, 1]
    square = torch.zeros(1, 1, 7, 7)
    square[0, 0, 1:6, 1:6] = 1
    phi = signed_distance(square)[0, 0]
    assert phi[3, 3] == -2 and phi[1, 3] == 0 and phi[0, 3] == 1 and phi[0, 0] == pytest.approx(math.sqrt(2))
    assert signed_distance(torch.zeros(1, 1, 4, 4)).abs().sum() == 0  # an absent class: no boundary term


def test_boundary_loss_and_its_schedules():
    logits, labels = row([0.2, 0.9, 0.8, 0.7, 0.6, 0.1], [0, 1, 1, 1, 1, 0])
    boundary = (0.2 * 1 + 0.8 * -1 + 0.7 * -1 + 0.1 * 1) / 6            # Σ φ s / |Ω| = -0.2
    gdl = GeneralizedDiceLoss()(logits, labels).item()
    increase = BoundaryLoss()
    assert increase.boundary_term(logits, labels.long()).item() == pytest.approx(boundary, rel=1e-5)
    assert increase(logits, labels).item() == pytest.approx(gdl + 0.01 * boundary, rel=1e-5)   # epoch 0: α = 0.01
    increase.set_epoch(9)
    assert increase(logits, labels).item() == pytest.approx(gdl + 0.10 * boundary, rel=1e-5)
    rebalance = BoundaryLoss(schedule="rebalance")
    assert rebalance(logits, labels).item() == pytest.approx(gdl, rel=1e-5)                     # α = 1
    rebalance.set_epoch(50)
    assert rebalance(logits, labels).item() == pytest.approx(0.5 * gdl + 0.5 * boundary, rel=1e-5)
    rebalance.set_epoch(500)
    assert rebalance.alpha == pytest.approx(0.01)                                              # floor
    with pytest.raises(CTBenchError, match="schedule='linear'"):
        BoundaryLoss(schedule="linear")


def test_training_module_hands_the_epoch_to_a_scheduled_loss():
    from ctbench.engine.module import SegmentationModule

    loss = BoundaryLoss()
    SegmentationModule.on_train_epoch_start(SimpleNamespace(loss_fn=loss, current_epoch=4))
    assert loss.epoch == 4 and loss.alpha == pytest.approx(0.05)


def test_hausdorff_dt_weights_errors_by_squared_boundary_distances():
    logits, labels = row([0.2, 0.7, 0.6, 0.1], [0, 1, 0, 0])
    # truth [0 1 0 0]: distance to its boundary (voxels, 1 on either side) d_p = [1, 1, 1, 2];
    # prediction > 0.5 is [0 1 1 0]: d_q = [1, 1, 1, 1]; (p - q)^2 = [0.04, 0.09, 0.36, 0.01]
    expected = (0.04 * 2 + 0.09 * 2 + 0.36 * 2 + 0.01 * 5) / 4                     # 0.2575
    assert HausdorffDTLoss(lambda_dice=0.0)(logits, labels).item() == pytest.approx(expected, rel=1e-5)
    dice = 1 - (2 * 0.7 + 1e-5) / (1 + 1.6 + 1e-5)
    assert HausdorffDTLoss()(logits, labels).item() == pytest.approx(expected + dice, rel=1e-5)


@pytest.mark.parametrize("loss", [TopKLoss(), DiceTopKLoss(), DiceFocalLoss(), BoundaryLoss(), HausdorffDTLoss()],
                         ids=lambda loss: loss.loss_name)
def test_gradients_are_finite_in_2d_and_3d(loss, pair):
    logits, labels = pair
    logits = logits.clone().requires_grad_(True)
    loss(logits, labels).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_topk_rejects_a_bad_k():
    with pytest.raises(CTBenchError, match=r"k=0 must be a percentage in \(0, 100\]"):
        TopKLoss(k=0)


@pytest.mark.slow
def test_every_new_loss_trains_and_tests_with_debug_fast(tmp_path):
    """`ctbench train -m loss=... debug=fast` for the five losses, 2 epochs (the boundary schedule moves)."""
    import json

    from cli_helpers import TINY, ctbench

    names = ("topk", "dice_topk", "dice_focal", "boundary", "hausdorff_dt")
    sweep = tmp_path / "multirun"
    ctbench("train", "-m", f"loss={','.join(names)}", "model=unet", "dims=3", *TINY, f"hydra.sweep.dir={sweep}",
            cwd=tmp_path)
    for name in names:
        summary = json.loads((sweep / f"unet-{name}-3d-seed42-fold0" / "report" / "summary.json").read_text())
        assert summary["status"] == "complete" and summary["loss"] == name and summary["epochs"] == 2
