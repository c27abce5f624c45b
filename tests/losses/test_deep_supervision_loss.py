"""Deep supervision: nnU-Net's weights and the weighted sum over resolutions, by hand."""

from __future__ import annotations

import pytest
import torch

from ctbench.losses.cross_entropy import CrossEntropyLoss
from ctbench.losses.deep_supervision import deep_supervision_loss, nnunet_weights, resize_labels


@pytest.mark.parametrize("levels,expected", [
    (1, [1.0]),
    (2, [1.0, 0.0]),
    (4, [8 / 14, 4 / 14, 2 / 14, 0.0]),  # 1, 1/2, 1/4 normalised by 1.75; the lowest zeroed
])
def test_nnunet_weights(levels, expected):
    assert nnunet_weights(levels) == pytest.approx(expected)


def test_labels_are_resized_nearest_exact():
    # nearest-exact 4 -> 2 samples source indices 1 and 3 (floor((i + 0.5) * 2)), not 0 and 2
    labels = torch.arange(16).view(1, 1, 4, 4)
    assert resize_labels(labels, (2, 2)).tolist() == [[[[5, 7], [13, 15]]]]
    assert resize_labels(labels, (2, 2)).dtype == torch.int64


def test_weighted_sum_over_resolutions():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (2, 1, 8, 8), generator=gen)
    outputs = [torch.randn(2, 3, 8, 8, generator=gen), torch.randn(2, 3, 4, 4, generator=gen),
               torch.randn(2, 3, 2, 2, generator=gen)]
    ce = CrossEntropyLoss()
    expected = (2 / 3) * ce(outputs[0], labels) + (1 / 3) * ce(outputs[1], labels[:, :, 1::2, 1::2])
    assert deep_supervision_loss(ce, outputs, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert deep_supervision_loss(ce, outputs[0], labels).item() == pytest.approx(ce(outputs[0], labels).item())


def test_the_zero_weighted_output_still_gets_a_gradient():
    """DDP needs every parameter used: the lowest output's head gets zero gradients, not none."""
    labels = torch.randint(0, 2, (1, 1, 4, 4))
    outputs = [torch.randn(1, 2, 4, 4, requires_grad=True), torch.randn(1, 2, 2, 2, requires_grad=True)]
    deep_supervision_loss(CrossEntropyLoss(), outputs, labels).backward()
    assert outputs[1].grad is not None and not outputs[1].grad.any() and outputs[0].grad.any()
