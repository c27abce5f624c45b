"""Transfer learning from a local weights file: torchvision-style names, FC -> conv, 2D -> 3D inflation."""

from __future__ import annotations

import pytest
import torch

from ctbench.errors import CTBenchError
from ctbench.models.base import load_pretrained
from ctbench.models.deeplab import DeepLabV3
from ctbench.models.encoders import ResNetEncoder, VGGEncoder
from ctbench.models.fcn import FCN8s

pytestmark = pytest.mark.filterwarnings("ignore")

SMALL_VGG = dict(channels=(8, 8, 16, 16, 16), convs=(1, 1, 1, 1, 1), fc_channels=16, fc_kernel=3, norm="none")


def _inflate(w2d: torch.Tensor, depth: int) -> torch.Tensor:
    return w2d.unsqueeze(2).repeat(1, 1, depth, 1, 1) / depth


def test_vgg_2d_weights_inflate_into_a_3d_fcn(tmp_path):
    torch.manual_seed(0)
    enc2d = VGGEncoder(2, 3, SMALL_VGG["channels"], SMALL_VGG["convs"])  # an RGB encoder, torchvision names
    state = dict(enc2d.state_dict())
    state["classifier.0.weight"] = torch.randn(16, 16 * 3 * 3)  # VGG fc6 stored as a Linear matrix
    state["classifier.0.bias"] = torch.randn(16)
    state["classifier.6.weight"] = torch.randn(1000, 16)  # the ImageNet head: ignored
    path = tmp_path / "vgg_imagenet.pt"
    torch.save(state, path)

    model = FCN8s(3, 1, 4, **SMALL_VGG, pretrained=str(path))
    rgb = state["features.0.weight"]  # [8, 3, 3, 3] -> [8, 1, 3, 3, 3]: RGB summed (mean x 3), inflated
    torch.testing.assert_close(model.encoder.features[0].weight, _inflate(rgb.sum(1, keepdim=True), 3))
    torch.testing.assert_close(model.encoder.features[3].weight, _inflate(state["features.3.weight"], 3))
    torch.testing.assert_close(model.fc6.weight, _inflate(state["classifier.0.weight"].reshape(16, 16, 3, 3), 3))
    torch.testing.assert_close(model.fc6.bias, state["classifier.0.bias"])
    assert model(torch.randn(1, 1, 32, 32, 32)).shape == (1, 4, 32, 32, 32)


def test_inflated_kernel_sees_a_depth_constant_volume_like_the_2d_kernel_sees_the_slice(tmp_path):
    torch.manual_seed(0)
    enc2d = VGGEncoder(2, 1, (4,), (1,))
    path = tmp_path / "one_conv.pt"
    torch.save(enc2d.state_dict(), path)
    enc3d = VGGEncoder(3, 1, (4,), (1,))
    load_pretrained(enc3d, path)
    image = torch.randn(1, 1, 8, 8)
    volume = image.unsqueeze(2).repeat(1, 1, 6, 1, 1)
    out2d = enc2d.features[0](image)
    out3d = enc3d.features[0](volume)[:, :, 3]  # away from the depth border
    torch.testing.assert_close(out3d, out2d, atol=1e-5, rtol=1e-5)


def test_resnet_2d_checkpoint_loads_into_a_3d_deeplabv3(tmp_path):
    torch.manual_seed(0)
    enc = ResNetEncoder(2, 1, "basic", (1, 1, 1, 1), (16, 32, 64, 128), 16, 16, (1, 2, 4))
    path = tmp_path / "resnet2d.pt"
    torch.save({"state_dict": {f"model.encoder.{k}": v for k, v in enc.state_dict().items()}}, path)
    model = DeepLabV3(3, 1, 3, pretrained=str(path))
    torch.testing.assert_close(model.encoder.layer3[0].conv1.weight, _inflate(enc.layer3[0].conv1.weight, 3))
    torch.testing.assert_close(model.encoder.conv1.weight, _inflate(enc.conv1.weight, 7))
    torch.testing.assert_close(model.encoder.bn1.running_var, enc.bn1.running_var)


def test_same_model_round_trip_via_config(tmp_path, build_model):
    first = build_model("segnet", 2)
    path = tmp_path / "segnet.pt"
    torch.save(first.state_dict(), path)
    second = build_model("segnet", 2, pretrained=str(path))
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)


def test_bad_files_are_one_line_errors(tmp_path):
    model = DeepLabV3(2, 1, 3)
    with pytest.raises(CTBenchError, match="not found"):
        load_pretrained(model, tmp_path / "missing.pt", "deeplabv3")
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "unrelated.pt")
    with pytest.raises(CTBenchError, match="no tensor .* matches"):
        load_pretrained(model, tmp_path / "unrelated.pt", "deeplabv3")
    torch.save({"encoder.conv1.weight": torch.zeros(5, 1, 7, 7)}, tmp_path / "wide.pt")
    with pytest.raises(CTBenchError, match="same width preset"):
        load_pretrained(model, tmp_path / "wide.pt", "deeplabv3")
