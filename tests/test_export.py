"""``ctbench export``: the ONNX file run by onnxruntime and the TorchScript file run by ``torch.jit.load``
reproduce the network's logits within 1e-4, at the traced size and at another (dynamic axes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from ctbench.engine.checkpoint import model_from_checkpoint
from ctbench.engine.export import FORMATS, export_model, run_exported, verify_export
from ctbench.errors import CTBenchError

from cli_helpers import ctbench

sys.path.insert(0, str(Path(__file__).parent / "models"))
from model_helpers import build, patch_side  # noqa: E402

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=pytest.mark.slow) if f != "onnx" else f for f in FORMATS])
def test_default_unet_checkpoint_exports_with_its_preprocessing(trained_run, tmp_path, fmt):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    output = tmp_path / ("unet.onnx" if fmt == "onnx" else "unet.pt")
    ctbench("export", f"ckpt_path={ckpt}", f"format={fmt}", f"output={output}", cwd=tmp_path)
    model = model_from_checkpoint(ckpt)[0]
    volume = torch.randn(1, 1, 24, 16, 32, generator=torch.Generator().manual_seed(2))  # not the 16^3 patch
    with torch.no_grad():
        expected = model(volume)
    got = run_exported(output, fmt, volume)
    assert got.shape == expected.shape == (1, 5, 24, 16, 32)
    assert float((got - expected).abs().max()) <= 1e-4
    contract = json.loads(output.with_suffix(".json").read_text())
    assert contract["classes"] == ["background", "liver", "spleen", "kidney", "lesion"]
    assert contract["preprocessing"]["spacing_mm"] == [10.0, 10.0, 10.0]  # debug=fast's target spacing
    assert contract["preprocessing"]["window_hu"] == [-160.0, 240.0] and contract["preprocessing"]["orientation"] == "RAS"
    assert contract["input"]["fixed_spatial_shape"] is None and contract["input"]["spatial_multiple_of"] == 8
    again = ctbench("export", f"ckpt_path={ckpt}", f"format={fmt}", f"output={output}", cwd=tmp_path, check=False)
    assert again.returncode != 0 and "already exists: add overwrite=true" in again.stderr


#: every network that exports with dynamic spatial axes (docs/export.md)
DYNAMIC = ["unet", "fcn32s", "fcn16s", "fcn8s", "vnet", "attention_unet", "fcdensenet", "deeplabv1", "deeplabv2",
           "drinet", "segan"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", DYNAMIC)
def test_model_families_reproduce_their_logits(tmp_path, name, fmt):
    torch.manual_seed(0)
    model = build(name, 2, num_classes=3).eval()
    side = patch_side(model, 16)
    example = torch.randn(1, 1, side, side)
    output = tmp_path / f"{name}.{fmt}"
    export_model(model, example, fmt, output)
    assert verify_export(model, example, fmt, output)  # traced size and a larger one, within 1e-4


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fmt", "dynamic"), [("deeplabv3", "onnx", False), ("deeplabv3p", "onnx", False),
                                                  ("deeplabv3p", "torchscript", False), ("pspnet", "torchscript", False)])
def test_global_pooling_graphs_keep_the_traced_shape(tmp_path, name, fmt, dynamic):
    """Image-level pooling branches are traced with the example's size: right there, wrong elsewhere."""
    torch.manual_seed(0)
    model = build(name, 2, num_classes=3).eval()
    side = patch_side(model, 16)
    example = torch.randn(1, 1, side, side)
    export_model(model, example, fmt, tmp_path / "m")
    assert verify_export(model, example, fmt, tmp_path / "m") is dynamic


@pytest.mark.parametrize(("name", "fmt", "why"), [("segnet", "onnx", "cannot be exported as onnx"),
                                                  ("pspnet", "onnx", "cannot be exported as onnx"),
                                                  ("cascaded_fcn", "torchscript", "crops the box")])
def test_models_that_cannot_be_exported_say_why_in_one_line(tmp_path, name, fmt, why):
    model = build(name, 2, num_classes=3).eval()
    side = patch_side(model, 32)
    with pytest.raises(CTBenchError, match=why) as info:
        export_model(model, torch.randn(1, 1, side, side), fmt, tmp_path / "m")
    assert "\n" not in str(info.value) and "docs/export.md" in str(info.value)
    assert not (tmp_path / "m").exists()
