"""Presets that follow a source beyond their parameter count: MONAI's V-Net layout, SegAN's reference
weighting of the critic's features."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import VNet as MonaiVNet

from ctbench.models.base import parameter_count
from ctbench.models.segan import SegAN
from ctbench.models.vnet import VNet


def test_vnet_monai_preset_is_monais_vnet():
    with torch.device("meta"):
        assert parameter_count(VNet(3, 1, 2, preset="monai")) == parameter_count(MonaiVNet(3, 1, 2)) == 45_597_898


def test_segan_reference_code_weights_the_concatenated_features_as_train_py():
    """YuanXue1993/SegAN ``NetC.forward`` concatenates input, out1 .. out6 with weights 1, 1, 2, 2, 2, 2, 4 and
    ``train.py`` takes one mean of ``|result - target|`` over the concatenation."""
    torch.manual_seed(0)
    model = SegAN(2, 1, 2, preset="reference_code")
    image = torch.rand(2, 1, 64, 64)
    probs = torch.softmax(torch.randn(2, 2, 64, 64), 1)
    truth = F.one_hot(torch.randint(0, 2, (2, 64, 64)), 2).movedim(-1, 1).float()

    def net_c(masked: torch.Tensor) -> torch.Tensor:
        feats = model.critic(masked)
        return torch.cat([w * f.reshape(2, -1) for w, f in zip((1, 1, 2, 2, 2, 2, 4), feats, strict=True)], 1)

    with torch.no_grad():
        expected = torch.mean(torch.abs(net_c(model.critic.mask(image, probs)) - net_c(model.critic.mask(image, truth))))
    assert model.adversarial_weight == 1.0
    with torch.no_grad():
        assert model.multiscale_l1(image, probs, truth).item() == pytest.approx(expected.item(), rel=1e-5)
        model.critic_layer_weights = None  # the paper's eq. 2: the mean of each layer's mean, equal weights
        assert model.multiscale_l1(image, probs, truth).item() != pytest.approx(expected.item(), rel=1e-2)
