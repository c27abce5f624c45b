"""``model.skip=concat|add`` on U-Net (issue 23): the one-ingredient ablation of U-Net's concatenated skips
against FCN's added ones. Shapes in 2D and 3D, parameter counts derived by hand, a checkpoint round trip
through the loader ``eval``/``predict`` use, and the one-line refusals."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ctbench.config import compose
from ctbench.engine.allowlist import check_untrusted
from ctbench.engine.checkpoint import model_from_checkpoint
from ctbench.engine.checkpoint_schema import MODEL_CHOICES
from ctbench.engine.components import build_model
from ctbench.engine.resume import config_differences, fingerprint
from ctbench.errors import CTBenchError
from ctbench.models.base import parameter_count
from ctbench.models.unet import SKIPS, AddSkipUNet, UNet

TINY = {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 0}


@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("dims", [2, 3])
def test_both_skips_give_logits_of_the_input_size(skip, dims):
    model = UNet(dims, 1, 5, channels=(8, 16, 32), strides=(2, 2), skip=skip).eval()
    x = torch.randn(2, 1, *([16] * dims))
    assert model(x).shape == (2, 5, *([16] * dims))
    assert isinstance(model.net, AddSkipUNet) == (skip == "add")


def test_add_skips_have_the_hand_counted_parameters():
    # channels 4, 8, 16, strides 2, 2, no residual units, 1 -> 2 classes, 2D, 3x3 kernels. MONAI's Convolution:
    # conv weight + bias, instance norm without affine (0), one PReLU weight; the top up-layer is conv only.
    down0 = 1 * 4 * 9 + 4 + 1          # 41
    down1 = 4 * 8 * 9 + 8 + 1          # 297
    bottom = 8 * 16 * 9 + 16 + 1       # 1169 (stride 1, the bottom layer)
    concat = down0 + down1 + bottom + (8 + 16) * 4 * 9 + 4 + 1 + (4 + 4) * 2 * 9 + 2   # up layers take cat widths
    add = down0 + down1 + bottom + 16 * 8 + 8 + 8 * 4 * 9 + 4 + 1 + 4 * 2 * 9 + 2     # 1x1 16 -> 8, then c only
    assert (concat, add) == (2522, 2010)
    assert parameter_count(UNet(2, 1, 2, **TINY)) == concat
    assert parameter_count(UNet(2, 1, 2, **TINY, skip="add")) == add


@pytest.mark.parametrize("dims,kernel", [(2, 9), (3, 27)])
def test_add_skips_remove_the_concatenated_widths_of_the_default_unet(dims, kernel):
    # configs/model/unet.yaml (16, 32, 64, 128), 5 classes: each up layer's transposed conv loses (upc - c) input
    # channels: (64 + 128 - 64) * 32, (64 - 32) * 16, (32 - 16) * 5 kernels; the 1x1 projection 128 -> 64 is added
    fewer = (128 * 32 + 32 * 16 + 16 * 5) * kernel - (128 * 64 + 64)
    assert fewer == {2: 33_936, 3: 118_320}[dims]
    assert parameter_count(UNet(dims, 1, 5)) - parameter_count(UNet(dims, 1, 5, skip="add")) == fewer


def test_add_sums_the_encoder_feature_and_the_decoder_feature():
    model = UNet(2, 1, 2, **TINY, skip="add").eval()
    skip = model.net.model[1]   # the top skip: the first encoder feature (4 channels at 1/2) + the decoder's
    seen = {}
    skip.submodule.register_forward_hook(lambda m, args, out: seen.update(x=args[0], y=out))
    skip.register_forward_hook(lambda m, args, out: seen.update(out=out))
    model(torch.randn(1, 1, 16, 16))
    assert seen["out"].shape == seen["x"].shape == (1, 4, 8, 8)
    torch.testing.assert_close(seen["out"], seen["x"] + seen["y"])


def test_every_parameter_of_the_add_network_learns():
    """The rebuilt decoder layers and the 1x1 projection are in the graph: each gets a gradient from the loss."""
    torch.manual_seed(0)
    model = UNet(3, 1, 3, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, skip="add").train()
    logits = model(torch.randn(2, 1, 8, 8, 8))
    torch.nn.functional.cross_entropy(logits, torch.randint(0, 3, (2, 8, 8, 8))).backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


def test_a_checkpoint_with_added_skips_loads_through_evals_loader(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose("train", ["debug=fast", "model=unet", "model.skip=add", "model.channels=[4,8,8,8]"])
    stored = OmegaConf.to_container(cfg, resolve=True)
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    path = _save(tmp_path / "add.ckpt", stored, net)
    loaded, run_cfg, _ = model_from_checkpoint(path)
    assert run_cfg.model.skip == "add" and isinstance(loaded.net, AddSkipUNet)
    x = torch.randn(1, 1, 32, 32, 32)
    torch.testing.assert_close(loaded(x), net(x))
    # a checkpoint written before the option (no `skip` key) is the concatenating network, as before
    del stored["model"]["skip"]
    cfg.model.skip = "concat"
    concat = build_model(cfg).eval()
    loaded = model_from_checkpoint(_save(tmp_path / "old.ckpt", stored, concat))[0]
    torch.testing.assert_close(loaded(x), concat(x))
    # a stored value off the enum is refused by the schema in one line, before anything is built
    stored["model"]["skip"] = "sum"
    with pytest.raises(CTBenchError, match=r"'model.skip' = 'sum': must be one of concat, add") as err:
        model_from_checkpoint(_save(tmp_path / "bad.ckpt", stored, concat))
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


def _save(path: Path, stored: dict, net: torch.nn.Module) -> Path:
    buffer = io.BytesIO()
    torch.save({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"cfg": stored}, "epoch": 1}, buffer)
    path.write_bytes(buffer.getvalue())
    return path


def test_an_unknown_skip_is_one_line_naming_both_values():
    with pytest.raises(CTBenchError, match=r"model 'unet' has no skip 'sum': use model.skip=concat .* or "
                                           r"model.skip=add") as err:
        UNet(2, 1, 2, skip="sum")
    assert err.value.exit_code == 2
    with pytest.raises(CTBenchError, match="skip=add is built on MONAI UNet, not on preset=paper"):
        UNet(2, 1, 2, skip="add", preset="paper")


def test_schema_and_allowlist_accept_exactly_the_models_values():
    assert MODEL_CHOICES["skip"] == SKIPS
    check_untrusted({"model": {"_target_": "ctbench.models.unet.UNet", "skip": "add"}}, "a checkpoint")


def test_runs_made_before_the_option_are_the_same_runs_as_concat():
    """The key's default leaves a U-Net run's fingerprint as it was: runs trained before the option resume."""
    old = {"model": {"_target_": "ctbench.models.unet.UNet", "channels": [16, 32]}, "seed": 0}
    concat = {**old, "model": {**old["model"], "skip": "concat"}}
    add = {**old, "model": {**old["model"], "skip": "add"}}
    assert fingerprint(old) == fingerprint(concat) != fingerprint(add)
    assert config_differences(old, concat) == []
    assert config_differences(old, add) == ["model.skip: '<absent>' -> 'add'"]
