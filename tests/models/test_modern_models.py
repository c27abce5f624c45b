"""The modern baselines (issue 24): nnU-Net's planning, ResEnc M/L against ``dynamic_network_architectures``,
forward shapes in 2D and 3D, and every one trained and tested with ``debug=fast`` (slow tier)."""

from __future__ import annotations

import pytest
import torch

from ctbench.errors import CTBenchError
from ctbench.models.base import parameter_count
from ctbench.models.dynunet import DynUNet
from ctbench.models.nnunet_plan import plan_unet
from ctbench.models.resenc_unet import PRESETS, ResEncUNet
from ctbench.models.transformer_unets import UNETR

from cli_helpers import TINY, ctbench, read_summary

pytestmark = pytest.mark.filterwarnings("ignore")

#: tiny widths per model, so that a forward pass costs milliseconds
SMALL = {
    "dynunet": {"base_features": 4},
    "resenc_unet": {"base_features": 4},
    "segresnet": {"init_filters": 8},
    "unetr": {"feature_size": 4, "hidden_size": 24, "mlp_dim": 48, "num_heads": 2},
    "swinunetr": {"feature_size": 12, "depths": [1, 1, 1, 1]},
    "mednext": {},
}


def test_plan_isotropic_pools_every_axis_down_to_four_voxels():
    plan = plan_unet((128, 128, 128), (1.0, 1.0, 1.0))
    assert plan.strides == ((1, 1, 1),) + ((2, 2, 2),) * 5  # 128 -> 4: five poolings
    assert plan.kernel_sizes == ((3, 3, 3),) * 6
    assert plan.features() == (32, 64, 128, 256, 320, 320) and plan.divisor == (32, 32, 32)


def test_plan_thick_slices_pool_in_plane_first_with_in_plane_kernels():
    # 3 mm slices, 0.8 mm pixels: the first pooling skips z (3 / 0.8 >= 2), the first conv is 1x3x3; after one
    # in-plane pooling (1.6 mm) z is within a factor 2 and pools with the others
    plan = plan_unet((64, 192, 160), (3.0, 0.8, 0.8))
    assert plan.strides[:3] == ((1, 1, 1), (1, 2, 2), (2, 2, 2))
    assert plan.kernel_sizes[:2] == ((1, 3, 3), (3, 3, 3))
    assert plan.divisor == (16, 32, 32)


def test_plan_rounds_the_patch_up_and_rejects_bad_input():
    assert plan_unet((20, 20)).patch_size == (20, 20)  # 20 -> 10 -> 5: two poolings, divisor 4
    assert plan_unet((30, 30)).patch_size == (32, 32)
    with pytest.raises(CTBenchError, match="positive patch size"):
        plan_unet((32, 32), (1.0, 0.0))


def _dna_resenc(dims: int, patch, spacing, preset: str, classes: int = 5):
    """``dynamic_network_architectures``' ResidualEncoderUNet with nnU-Net's ResEnc planner arguments
    (``residual_encoder_unet_planners.py``: ``get_plans_for_configuration``)."""
    unet = pytest.importorskip("dynamic_network_architectures.architectures.unet")
    plan, n = plan_unet(patch, spacing), plan_unet(patch, spacing).n_stages
    nd = {2: (torch.nn.Conv2d, torch.nn.InstanceNorm2d), 3: (torch.nn.Conv3d, torch.nn.InstanceNorm3d)}[dims]
    return unet.ResidualEncoderUNet(
        1, n, plan.features(), nd[0], plan.kernel_sizes, plan.strides, PRESETS[preset]["blocks_per_stage"][:n],
        classes, (1,) * (n - 1), conv_bias=True, norm_op=nd[1], norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True})


@pytest.mark.parametrize("preset", ["M", "L"])
@pytest.mark.parametrize("dims,patch,spacing", [(3, (128, 128, 128), (1.0, 1.0, 1.0)),
                                                (3, (80, 192, 160), (2.5, 0.8, 0.8)),
                                                (2, (512, 512), (0.8, 0.8))])
def test_resenc_parameter_count_equals_nnunets_network(preset, dims, patch, spacing):
    with torch.device("meta"):
        reference = parameter_count(_dna_resenc(dims, patch, spacing, preset))
        ours = parameter_count(ResEncUNet(dims, 1, 5, patch, spacing, preset=preset))
    print(f"resenc_unet {preset} {dims}D {patch}: {ours:,} (dynamic_network_architectures: {reference:,})")
    assert abs(ours / reference - 1) <= 0.02
    assert ours == reference  # the same layers, so the same count to the parameter


def test_resenc_computes_what_nnunets_network_computes():
    """The same weights give the same logits: the layer order (conv-norm-act, ResNet-D skip) is nnU-Net's."""
    reference = _dna_resenc(3, (16, 16, 16), None, "M").eval()
    ours = ResEncUNet(3, 1, 5, (16, 16, 16)).eval()
    pairs = list(zip(ours.parameters(), reference.parameters(), strict=True))
    assert all(mine.shape == ref.shape for mine, ref in pairs)
    with torch.no_grad():
        for mine, ref in pairs:
            ref.copy_(mine.copy_(torch.randn_like(mine)))
        x = torch.randn(1, 1, 16, 16, 16)
        assert torch.allclose(ours(x), reference(x), atol=1e-4)


def test_dynunet_is_nnunets_plain_unet_up_to_the_biases():
    unet = pytest.importorskip("dynamic_network_architectures.architectures.unet")
    plan = plan_unet((128, 128, 128))
    n = plan.n_stages
    with torch.device("meta"):
        reference = parameter_count(unet.PlainConvUNet(
            1, n, plan.features(), torch.nn.Conv3d, plan.kernel_sizes, plan.strides, 2, 5, (2,) * (n - 1), True,
            torch.nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU))
        ours = parameter_count(DynUNet(3, 1, 5, (128, 128, 128)))
    print(f"dynunet 3D 128^3: {ours:,} (PlainConvUNet: {reference:,})")
    assert abs(ours / reference - 1) <= 0.002  # DynUNet drops the conv biases and the unused seg heads


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_shape(name, dims, build_model):
    side = 64 if name == "swinunetr" else 32
    model = build_model(name, dims, num_classes=5, **SMALL[name]).to("meta")
    assert side % model.size_divisor == 0
    out = model(torch.empty(2, 1, *(side,) * dims, device="meta"))
    assert tuple(out.shape) == (2, 5) + (side,) * dims


@pytest.mark.parametrize("name", ["dynunet", "resenc_unet", "mednext"])
def test_deep_supervision_returns_every_level_in_training_only(name, build_model):
    model = build_model(name, 3, num_classes=5, deep_supervision=True, **SMALL[name]).to("meta")
    x = torch.empty(1, 1, 32, 32, 32, device="meta")
    sides = [o.shape[-1] for o in model.train()(x)]
    assert sides[0] == 32 and sides == sorted(sides, reverse=True) and len(sides) >= 3
    assert tuple(model.eval()(x).shape) == (1, 5, 32, 32, 32)


def test_mednext_variants_are_monais_create_mednext():
    from monai.networks.nets.mednext import create_mednext

    from ctbench.models.mednext import MedNeXt

    with torch.device("meta"):
        for variant in "SBML":
            assert parameter_count(MedNeXt(3, 1, 5, variant=variant)) == parameter_count(
                create_mednext(variant, spatial_dims=3, in_channels=1, out_channels=5)), variant


def test_grids_shrink_the_widths_by_class():
    """An experiment's ``model_width`` / ``model_preset`` maps (modern_grid_cpu, modern_grid) reach the model."""
    from omegaconf import OmegaConf

    from model_helpers import MODEL_DIR

    for name, key, value in [("dynunet", "base_features", 8), ("mednext", "init_filters", 8)]:
        model = OmegaConf.load(MODEL_DIR / f"{name}.yaml")
        cfg = OmegaConf.create({"dims": 2, "dataset": {"in_channels": 1, "num_classes": 3}, "model": model,
                                "model_width": {model._target_: value}})
        assert cfg.model[key] == value
        del cfg["model_width"]
        assert cfg.model[key] == 32


def test_unetr_names_its_one_input_size():
    model = UNETR(2, 1, 3, patch_size=(32, 32), hidden_size=24, mlp_dim=48, num_heads=2, feature_size=4)
    with pytest.raises(CTBenchError, match=r"built for inputs of \[32, 32\]"):
        model(torch.zeros(1, 1, 48, 48))
    with pytest.raises(CTBenchError, match="multiples of 16"):
        UNETR(2, 1, 3, patch_size=(40, 40))


def test_resenc_unknown_preset_is_one_line():
    with pytest.raises(CTBenchError, match="has no preset 'XXL': use one of M, L"):
        ResEncUNet(3, 1, 3, (16, 16, 16), preset="XXL")


# ---- every new model through `ctbench train -m ... debug=fast` (train, validate, test, report)

NEW_MODELS = {3: ("dynunet", "resenc_unet", "segresnet", "unetr", "mednext"),   # Swin UNETR 3D: 64^3, ~10 s a step
              2: ("dynunet", "resenc_unet", "segresnet", "unetr", "mednext", "swinunetr")}


@pytest.mark.slow
@pytest.mark.parametrize("dims", [3, 2])
def test_debug_fast_trains_and_tests_every_new_model(dims, tmp_path):
    sweep = tmp_path / "multirun"
    ctbench("train", "-m", f"model={','.join(NEW_MODELS[dims])}", f"dims={dims}", *TINY, "trainer.max_epochs=1",
            "seed=42", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    for name in NEW_MODELS[dims]:
        summary = read_summary(sweep / f"{name}-dice_ce-{dims}d-seed42-fold0")
        assert summary["status"] == "complete" and summary["model"] == name and summary["dims"] == dims
        assert 0.0 <= summary["mean_dice"] <= 1.0 and summary["params"] > 0


@pytest.mark.slow
def test_resenc_preset_m_with_deep_supervision_trains(tmp_path):
    """The issue's command, `ctbench train model=resenc_unet model.preset=M debug=fast`, with nnU-Net's deep supervision."""
    run = tmp_path / "run"
    ctbench("train", "model=resenc_unet", "model.preset=M", "model.deep_supervision=true", *TINY,
            "trainer.max_epochs=1", f"hydra.run.dir={run}", cwd=tmp_path)
    summary = read_summary(run)
    assert summary["status"] == "complete" and summary["model"] == "resenc_unet"


def test_ctbench_list_shows_the_new_models_and_losses():
    from ctbench.catalog import entries

    models = dict(entries("model"))
    for name in ("dynunet", "resenc_unet", "segresnet", "unetr", "swinunetr", "mednext"):
        assert name in models and " — " in models[name]
    assert {"topk", "dice_topk", "dice_focal", "boundary", "hausdorff_dt"} <= dict(entries("loss")).keys()
