"""Paper and reference-code presets reproduce the published or reference parameter counts (built on the
meta device: no memory)."""

from __future__ import annotations

import pytest
import torch

from ctbench.models.attention_unet import AttentionUNet
from ctbench.models.base import parameter_count
from ctbench.models.deeplab import DeepLabV1
from ctbench.models.fcdensenet import FCDenseNet
from ctbench.models.fcn import FCN8s
from ctbench.models.segan import SegAN
from ctbench.models.segnet import SegNet
from ctbench.models.unet import UNet
from ctbench.models.vnet import VNet

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


def conv_count(cin: int, cout: int, kernel: int, dims: int, bias: bool = True) -> int:
    return cin * cout * kernel**dims + (cout if bias else 0)


def ronneberger_count() -> int:
    """U-Net, Ronneberger et al. 2015 Fig. 1 (1 channel, 2 classes): two 3x3 convs per level (64-1024),
    2x2 up-convolutions halving the channels, a 1x1 classifier; no normalisation."""
    widths = [64, 128, 256, 512, 1024]
    n = sum(conv_count(a, b, 3, 2) + conv_count(b, b, 3, 2) for a, b in zip([1, *widths[:-1]], widths, strict=True))
    n += sum(conv_count(2 * w, w, 2, 2) + conv_count(2 * w, w, 3, 2) + conv_count(w, w, 3, 2) for w in widths[:-1])
    return n + conv_count(64, 2, 1, 2)


def oktay_paper_count(widths=(64, 128, 256, 512), classes: int = 2) -> int:
    """Attention U-Net as Oktay et al.'s Fig. 1-2 describe it (3D, 1 channel): two 3^3 conv-BN-ReLU per
    scale, a 1x1 conv-BN-ReLU gating signal, one gate per skip (theta: 2^3 stride-2 conv without bias,
    phi and psi 1x1 convs, output 1x1 conv + BN), decoder two 3^3 conv-BN-ReLU on [skip, upsampled]."""
    bn = 2
    n = sum(conv_count(a, b, 3, 3) + conv_count(b, b, 3, 3) + 2 * bn * b
            for a, b in zip([1, *widths[:-1]], widths, strict=True))
    n += conv_count(widths[-1], widths[-1], 1, 3) + bn * widths[-1]
    for c, g in zip(widths[:-1], widths[1:], strict=True):
        n += conv_count(c, c, 2, 3, bias=False) + conv_count(g, c, 1, 3) + conv_count(c, 1, 1, 3)
        n += conv_count(c, c, 1, 3) + bn * c
        n += conv_count(c + g, c, 3, 3) + conv_count(c, c, 3, 3) + 2 * bn * c
    return n + conv_count(widths[0], classes, 1, 3)


def segan_critic_count() -> int:
    """The critic ``NetC`` of YuanXue1993/SegAN ``net.py`` as ``forward`` uses it (3 input channels):
    convs 7/5/4/4/4/3 without bias, widths 64-128-256-512-512-512, batch norm from the second."""
    widths, kernels = [64, 128, 256, 512, 512, 512], [7, 5, 4, 4, 4, 3]
    n, cin = 0, 3
    for i, (c, k) in enumerate(zip(widths, kernels, strict=True)):
        n += conv_count(cin, c, k, 2, bias=False) + (2 * c if i else 0)
        cin = c
    return n


# (builder, reference count, how the reference was counted); within 2 %
REFERENCE = {
    # Ronneberger Fig. 1 layer by layer: 31,030,658; MONAI's BasicUNet keeps 128 channels in its last
    # up-convolution (+69,696, +0.22 %)
    "unet paper (2D)": (lambda: UNet(2, 1, 2, preset="paper"), ronneberger_count()),
    # ozan-oktay/Attention-Gated-Networks unet_CT_multi_att_dsv_3D(feature_scale=4, n_classes=2,
    # in_channels=1), built from the repository and counted: 6,472,784
    "attention_unet reference_code (3D)": (lambda: AttentionUNet(3, 1, 2, preset="reference_code"), 6_472_784),
    "attention_unet paper (3D)": (lambda: AttentionUNet(3, 1, 2, preset="paper"), oktay_paper_count()),
    # faustomilletari/VNet Prototxt/train_noPooling_ResNet_cinque.prototxt, every Convolution,
    # Deconvolution (with bias) and channel-wise PReLU summed: 61,982,682
    "vnet paper (3D)": (lambda: VNet(3, 1, 2, preset="paper"), 61_982_682),
    # the critic alone (ctbench's convs keep their biases: +1,984)
    "segan reference_code critic (2D)": (lambda: SegAN(2, 3, 1, preset="reference_code").critic, segan_critic_count()),
}


@pytest.mark.parametrize("label", list(REFERENCE))
def test_preset_matches_the_reference_count(label):
    builder, reference = REFERENCE[label]
    with torch.device("meta"):
        n = parameter_count(builder())
    print(f"{label}: {n:,} parameters (reference {reference:,}, {100 * (n / reference - 1):+.3f}%)")
    assert abs(n / reference - 1) <= 0.02


def test_reference_counts_by_hand():
    """The derived references themselves, so a wrong formula cannot pass silently."""
    assert ronneberger_count() == 31_030_658
    assert segan_critic_count() == 9_393_088


def test_unet_paper_has_no_normalisation():
    model = UNet(2, 1, 2, preset="paper")
    assert not [m for m in model.modules() if "Norm" in type(m).__name__]
