"""Bad input ends in one CTBenchError line naming the model, the constraint and the fix."""

from __future__ import annotations

import pytest
import torch

from ctbench.errors import CTBenchError
from ctbench.models.fcn import FCN8s
from ctbench.models.unet import UNet

pytestmark = pytest.mark.filterwarnings("ignore")


def test_wrong_channel_count():
    model = UNet(2, 1, 3)
    with pytest.raises(CTBenchError, match=r"model 'unet' expects 1 input channel\(s\), got 2: set dataset.in_channels"):
        model(torch.randn(1, 2, 32, 32))


def test_size_not_a_multiple_names_the_multiple_and_the_padded_size():
    model = FCN8s(2, 1, 3)
    with pytest.raises(CTBenchError, match=r"'fcn8s' needs every spatial size to be a multiple of 32, got \(64, 70\): pad to \(64, 96\)"):
        model(torch.randn(1, 1, 64, 70))


def test_too_small_for_depth():
    model = FCN8s(3, 1, 3)
    with pytest.raises(CTBenchError, match=r"'fcn8s' needs every spatial size >= 32 for its depth"):
        model(torch.randn(1, 1, 16, 32, 32))


def test_wrong_dimensionality_of_input():
    model = UNet(3, 1, 3)
    with pytest.raises(CTBenchError, match=r"built with dims=3 .* set dims=2"):
        model(torch.randn(1, 1, 32, 32))


@pytest.mark.parametrize("name", ["unet", "fcn8s", "segnet", "deeplabv3p", "pspnet", "vnet", "segan"])
def test_unsupported_dims_fails_in_init_with_exit_code_2(name, build_model):
    with pytest.raises(CTBenchError) as err:
        build_model(name, 4)
    assert err.value.exit_code == 2
    assert f"model '{name}' supports dims=2 or dims=3, not dims=4" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_preset_lists_the_presets(build_model):
    with pytest.raises(CTBenchError, match=r"'fcdensenet' has no preset 'fcdensenet999': use one of default, fcdensenet56"):
        build_model("fcdensenet", 2, preset="fcdensenet999")


def test_messages_are_one_line(build_model):
    model = build_model("deeplabv3", 2)
    for x in (torch.randn(1, 3, 32, 32), torch.randn(1, 1, 40, 32), torch.randn(1, 1, 8, 8)):
        with pytest.raises(CTBenchError) as err:
            model(x)
        assert "\n" not in str(err.value) and "deeplabv3" in str(err.value)
