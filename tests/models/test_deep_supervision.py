"""``model.deep_supervision=true``: a list of logits in training (full resolution first, then each
decoder level), a tensor in eval; trained through ``SegmentationModule`` every head learns."""

from __future__ import annotations

import pytest
import torch
from test_engine_modules import fit, run_cfg

from ctbench.engine.build import build_module

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("name,preset,sizes", [
    ("unet", None, [32, 16, 8]),                      # MONAI UNet, strides 2,2,2: levels 1/2, 1/4
    ("unet", "paper", [32, 16, 8, 4]),                # BasicUNet: upcat_2, upcat_3, upcat_4
    ("attention_unet", None, [32, 16, 8]),            # MONAI AttentionUnet's nested attention layers
    ("attention_unet", "reference_code", [32, 16, 8, 4]),  # Oktay's decoder scales 1/2 .. 1/8
])
def test_training_mode_returns_every_level(name, preset, sizes, build_model):
    model = build_model(name, 2, num_classes=3, deep_supervision=True, preset=preset)
    x = torch.randn(2, 1, 32, 32)
    outputs = model.train()(x)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, s, s) for s in sizes]
    logits = model.eval()(x)
    assert torch.is_tensor(logits) and logits.shape == (2, 3, 32, 32)
    assert torch.is_tensor(build_model(name, 2, num_classes=3, preset=preset).train()(x))  # off by default


def test_deep_supervision_trains_every_head_through_the_module():
    cfg = run_cfg("unet")
    cfg.model.deep_supervision = True
    torch.manual_seed(0)
    module = build_module(cfg)
    heads = module.model.deep_supervision.heads
    before = heads[0].weight.detach().clone()
    fit(module, 2, steps=3)
    # weights 2/3, 1/3, 0 (nnU-Net): the 1/2 head learns, the 1/4 head is in the graph with zero weight
    assert not torch.equal(before, heads[0].weight)
    grad = heads[1].weight.grad
    assert grad is not None and not grad.any()


def test_reference_code_supervises_its_own_class_heads(build_model):
    """Oktay's network already has a class head per scale (fused into its output): deep supervision takes
    those heads' outputs at their own resolution and adds no parameters."""
    from ctbench.models.base import parameter_count

    with_ds = build_model("attention_unet", 3, num_classes=3, deep_supervision=True, preset="reference_code")
    plain = build_model("attention_unet", 3, num_classes=3, preset="reference_code")
    assert parameter_count(with_ds) == parameter_count(plain)
    decoded = []
    with_ds.net.decoder[1].register_forward_hook(lambda module, args, out: decoded.append(out))
    outputs = with_ds.train()(torch.randn(2, 1, 16, 16, 16))
    assert [tuple(o.shape[2:]) for o in outputs] == [(16,) * 3, (8,) * 3, (4,) * 3, (2,) * 3]
    assert torch.equal(outputs[1], with_ds.net.heads[1](decoded[0]))  # the 1/2 head, before its upsampling
