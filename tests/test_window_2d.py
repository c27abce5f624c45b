"""``inference.window_2d=slice``: one window per whole axial slice, padded with air, equals the network
applied to each padded slice; ``patch`` keeps MONAI's sliding windows; bad values are refused."""

import pytest
import torch
from torch import nn

from ctbench.engine.checkpoint_schema import SchemaError, validate_inference
from ctbench.engine.inference import SlidingWindowPredictor


class PositionNet(nn.Module):
    """A fully convolutional 2D network that also sees the padding: 3x3 mean filter, then 2 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight[0].fill_(1 / 9)
            self.conv.weight[1].fill_(-1 / 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_whole_slice_window_is_the_network_on_each_air_padded_slice():
    torch.manual_seed(0)
    volume = torch.rand(1, 1, 37, 21, 3) - 2.0  # minimum about -2: the padding value
    net = PositionNet()
    predictor = SlidingWindowPredictor((16, 16), overlap=0.25, sw_batch_size=4, window_2d="slice")
    assert predictor.window(volume.shape[2:]) == (64, 32, 1)  # 37 -> 64 and 21 -> 32 (multiples of 32)
    probs = predictor(net, volume)
    minimum = float(volume.min())
    # MONAI pads symmetrically: 27 rows (13 before, 14 after), 11 columns (5 before, 6 after)
    expected = []
    for z in range(3):
        padded = nn.functional.pad(volume[..., z], (5, 6, 13, 14), value=minimum)
        logits = net(padded)[..., 13:13 + 37, 5:5 + 21]
        expected.append(torch.softmax(logits, 1))
    expected = torch.stack(expected, -1)
    assert probs.shape == (1, 2, 37, 21, 3)
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=1e-4)
    # the border pixel sees air, not zeros: with zero padding its mean would differ
    zero_padded = net(nn.functional.pad(volume[..., 0], (5, 6, 13, 14)))[..., 13, 5]
    assert not torch.allclose(torch.softmax(zero_padded, 1), probs[..., 0, 0, 0], atol=1e-3)


def test_patch_window_is_the_training_patch_and_3d_ignores_window_2d():
    assert SlidingWindowPredictor((16, 16)).window((37, 21, 3)) == (16, 16, 1)
    assert SlidingWindowPredictor((8, 8, 8), window_2d="slice").window((37, 21, 9)) == (8, 8, 8)
    with pytest.raises(ValueError, match="window_2d"):
        SlidingWindowPredictor((16, 16), window_2d="whole")


def test_a_checkpoint_naming_an_unknown_window_is_refused():
    inference = {"overlap": 0.25, "blend": "gaussian", "sw_batch_size_2d": 4, "sw_batch_size_3d": 2,
                 "tta_flips": [], "window_2d": "everything"}
    with pytest.raises(SchemaError, match="inference.window_2d"):
        validate_inference({"dims": 2, "postprocess": None, "inference": inference}, "checkpoint x")
    validate_inference({"dims": 2, "postprocess": None, "inference": {**inference, "window_2d": "slice"}}, "x")
