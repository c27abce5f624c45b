"""Every loss config: the calling convention, extremes, mixed precision and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

import ctbench
from ctbench.errors import CTBenchError

CONFIG_DIR = Path(ctbench.__file__).parent / "configs" / "loss"
SURVEY_NAMES = [
    "ce", "wce", "bce", "unet_weighted", "focal", "iou", "dice", "generalized_dice",
    "tversky", "focal_tversky", "combo", "exp_log", "conservative", "dice_ce",
]  # fmt: skip
#: the loss benchmark's losses beyond the survey (Ma et al. 2021; docs/losses.md)
MODERN_NAMES = ["topk", "dice_topk", "dice_focal", "boundary", "hausdorff_dt"]
NAMES = SURVEY_NAMES + MODERN_NAMES
#: losses that may go below zero: Combo subtracts the Dice coefficient, Conservative is log-shaped, the
#: boundary loss integrates a signed distance (negative inside the truth)
SIGNED = {"combo", "conservative", "boundary"}


def make(name: str) -> torch.nn.Module:
    return instantiate(OmegaConf.load(CONFIG_DIR / f"{name}.yaml"))


def test_every_contract_name_has_a_config():
    assert sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_first_line_and_target(name):
    lines = (CONFIG_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ") and " — " in lines[0]
    assert ("survey" in lines[0]) == (name in SURVEY_NAMES)
    assert lines[1].startswith("_target_: ctbench.losses.")


def _labels(kind: str, dims: int) -> torch.Tensor:
    spatial = (6,) * dims
    labels = torch.zeros(2, 1, *spatial)
    if kind == "full":
        labels += 1
    elif kind == "mixed":
        labels[..., :3] = 1
        labels[:, :, :2] = 2
    return labels


def _logits(kind: str, labels: torch.Tensor) -> torch.Tensor:
    if kind == "random":
        return torch.randn(2, 3, *labels.shape[2:], generator=torch.Generator().manual_seed(0)) * 3
    one_hot = torch.nn.functional.one_hot(labels[:, 0].long(), 3).movedim(-1, 1).float()
    sign = 1.0 if kind == "saturated_right" else -1.0
    return sign * (2 * one_hot - 1) * 1e4


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("label_kind", ["empty", "full", "mixed"])
@pytest.mark.parametrize("logit_kind", ["random", "saturated_right", "saturated_wrong"])
def test_finite_value_and_gradient_at_extremes(name, dims, label_kind, logit_kind):
    labels = _labels(label_kind, dims)
    logits = _logits(logit_kind, labels).requires_grad_()
    value = make(name)(logits, labels)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value)
    assert torch.isfinite(logits.grad).all()
    if name not in SIGNED:
        assert value.item() >= -1e-6
    if name == "combo":
        assert value.item() >= -1.0 - 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_perfect_prediction_beats_wrong_prediction(name):
    labels = _labels("mixed", 2)
    right = make(name)(_logits("saturated_right", labels) * 1e-3, labels)
    wrong = make(name)(_logits("saturated_wrong", labels) * 1e-3, labels)
    assert right.item() < wrong.item()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_matches_float32(name, dtype):
    labels = _labels("mixed", 3)
    logits = _logits("random", labels)
    reference = make(name)(logits.to(dtype).float(), labels)
    loss = make(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(logits.to(dtype), labels)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_integer_and_float_targets_agree(name):
    labels = _labels("mixed", 2)
    logits = _logits("random", labels)
    loss = make(name)
    assert loss(logits, labels).item() == pytest.approx(loss(logits, labels.long()).item(), rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_unchecked_path_gives_the_checked_value(name):
    """``input_checks = False`` (set by the training step after its first batch) skips the per-voxel checks
    only: the value and gradient stay those of the checked call, and a bad label is no longer looked for."""
    labels = _labels("mixed", 3).to(torch.uint8)
    logits = _logits("random", labels).requires_grad_()
    loss = make(name)
    checked = loss(logits, labels)
    (grad_checked,) = torch.autograd.grad(checked, logits)
    loss.input_checks = False
    unchecked = loss(logits, labels)
    (grad_unchecked,) = torch.autograd.grad(unchecked, logits)
    assert unchecked.item() == checked.item() and torch.equal(grad_unchecked, grad_checked)
    fractional = labels.float()
    fractional[0, 0, 0, 0] = 0.5  # truncated to 0 instead of an error
    assert torch.isfinite(loss(logits, fractional))


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_shapes(name):
    with pytest.raises(CTBenchError, match=rf"loss '{name}': target shape \(2, 1, 4, 4\) does not match logits"):
        make(name)(torch.randn(2, 3, 5, 5), torch.zeros(2, 1, 4, 4))


@pytest.mark.parametrize("name", NAMES)
def test_one_hot_target_is_rejected(name):
    with pytest.raises(CTBenchError, match=r"not one-hot"):
        make(name)(torch.randn(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [3.0, -1.0, 0.5])
def test_bad_label_values(name, bad):
    labels = torch.zeros(1, 1, 4, 4)
    labels[0, 0, 0, 0] = bad
    with pytest.raises(CTBenchError, match=rf"loss '{name}': target labels .* not integers in \[0, 3\)"):
        make(name)(torch.randn(1, 3, 4, 4), labels)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_logits(name, bad):
    logits = torch.randn(1, 3, 4, 4)
    logits[0, 1, 2, 2] = bad
    with pytest.raises(CTBenchError, match=rf"loss '{name}': logits contain NaN or inf"):
        make(name)(logits, torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize("name", NAMES)
def test_single_channel_logits(name):
    with pytest.raises(CTBenchError, match=r"C >= 2"):
        make(name)(torch.randn(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize("name,key", [("wce", "weight"), ("exp_log", "label_frequencies")])
def test_class_weights_of_wrong_length(name, key):
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    cfg[key] = [1.0, 2.0]
    with pytest.raises(CTBenchError, match=rf"loss '{name}': 2 class weights for 3 classes"):
        instantiate(cfg)(torch.randn(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    dims=st.sampled_from([2, 3]),
    classes=st.integers(2, 4),
    size=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([0.1, 3.0, 50.0]),
)
def test_property_random_inputs(name, dims, classes, size, seed, scale):
    gen = torch.Generator().manual_seed(seed)
    spatial = (size,) * dims
    logits = (torch.randn(2, classes, *spatial, generator=gen) * scale).requires_grad_()
    labels = torch.randint(0, classes, (2, 1, *spatial), generator=gen)
    value = make(name)(logits, labels)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    if name not in SIGNED:
        assert value.item() >= -1e-6
