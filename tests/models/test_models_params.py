"""2D paper presets reproduce the published parameter counts (built on the meta device: no memory)."""

from __future__ import annotations

import pytest
import torch

from ctbench.models.base import parameter_count
from ctbench.models.deeplab import DeepLabV1
from ctbench.models.fcdensenet import FCDenseNet
from ctbench.models.fcn import FCN8s
from ctbench.models.segnet import SegNet
from ctbench.models.unet import UNet

# (builder, published count, tolerance, source); inputs/classes as in each paper's benchmark
PAPER = {
    "fcn8s vgg16 (PASCAL, 21 classes)": (lambda: FCN8s(2, 3, 21, preset="vgg16"), 134e6, 0.05),
    "segnet paper (CamVid, 11 classes)": (lambda: SegNet(2, 3, 11, preset="paper"), 29.5e6, 0.05),
    "unet paper (1 channel, 2 classes)": (lambda: UNet(2, 1, 2, preset="paper"), 31.0e6, 0.05),
    "fcdensenet67 (CamVid)": (lambda: FCDenseNet(2, 3, 11, preset="fcdensenet67"), 3.5e6, 0.05),
    "fcdensenet103 (CamVid)": (lambda: FCDenseNet(2, 3, 11, preset="fcdensenet103"), 9.4e6, 0.05),
    "deeplabv1 vgg16 LargeFOV (21 classes)": (lambda: DeepLabV1(2, 3, 21, preset="vgg16"), 20.5e6, 0.05),
}


@pytest.mark.parametrize("label", list(PAPER))
def test_paper_preset_parameter_count(label):
    builder, published, tol = PAPER[label]
    with torch.device("meta"):
        n = parameter_count(builder())
    print(f"{label}: {n:,} parameters (paper: {published / 1e6:.1f}M, {100 * (n / published - 1):+.1f}%)")
    assert abs(n / published - 1) <= tol


def test_fcdensenet56_matches_the_reference_code():
    """The paper's table says 1.5M for FC-DenseNet56, but its own reference code (SimJeg/FC-DenseNet,
    growth 12, 4 layers per block, 48 first maps) has 1.38M: reimplementations report 1.37-1.4M
    (SimJeg/FC-DenseNet issue #31). We build the architecture the paper describes, so we check the
    reference code's count and document the paper's rounding: it is 8% below 1.5M."""
    with torch.device("meta"):
        n = parameter_count(FCDenseNet(2, 3, 11, preset="fcdensenet56"))
    print(f"fcdensenet56 (CamVid): {n:,} parameters (paper table: 1.5M, {100 * (n / 1.5e6 - 1):+.1f}%)")
    assert abs(n / 1.377e6 - 1) < 0.01
    assert abs(n / 1.5e6 - 1) < 0.10


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s", "cascaded_fcn", "segnet", "unet", "vnet",
                                  "fcdensenet", "deeplabv1", "deeplabv2", "deeplabv3", "deeplabv3p", "pspnet",
                                  "drinet", "attention_unet", "segan"])
def test_defaults_are_small_enough_for_a_cpu(name, build_model):
    with torch.device("meta"):
        for dims in (2, 3):
            n = parameter_count(build_model(name, dims, num_classes=5))
            assert 1e5 <= n <= 6e6, f"{name} dims={dims}: {n:,} parameters"
