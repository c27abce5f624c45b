"""The arg-max that turns probabilities into labels: torch's, the first class on ties, faster on the CPU."""

import torch

from ctbench.engine.inference import channel_argmax, label_map


def test_channel_argmax_is_torchs_argmax_with_the_first_class_on_ties():
    probs = torch.tensor([[0.2, 0.5, 0.0], [0.5, 0.5, 0.0], [0.3, 0.0, 0.0]])  # 3 classes x 3 voxels
    assert channel_argmax(probs, 0).tolist() == [1, 0, 0]  # a tie goes to the first class, as torch's
    torch.manual_seed(0)
    volume = torch.rand(2, 4, 9, 7, 5).round(decimals=1)  # batch x classes x space, many ties
    expected, before = volume.argmax(1), volume.clone()
    got = channel_argmax(volume, 1)
    assert got.dtype == torch.uint8 and got.shape == expected.shape and torch.equal(got.long(), expected)
    assert torch.equal(volume, before)  # the input is left as it was


def test_label_map_makes_voxels_outside_the_field_of_view_background():
    probs = torch.zeros(3, 2, 2)
    probs[:, 0, 0] = torch.tensor([0.1, 0.2, 0.7])
    assert label_map(probs).tolist() == [[2, 0], [0, 0]]
