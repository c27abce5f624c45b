"""The ``augment`` group: ``light`` draws exactly what the loader drew before the group existed, ``nnunet``
items do what nnU-Net's transforms do (hand-checked cases), and any item is switched off from the command line."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai import transforms as T
from omegaconf import OmegaConf

from ctbench.data.transforms import augmentation, train_chain
from ctbench.errors import CTBenchError

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "augment"
PRE = {"orientation": "RAS", "spacing": [4.0, 4.0, 4.0], "window": "abdomen", "normalize": "window",
       "crop_foreground": False}


def group(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{name}.yaml"))


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict[str, str]:
    """A real 24^3 NIfTI pair at 4 mm: HU noise around a 3-class block phantom."""
    folder = tmp_path_factory.mktemp("case")
    rng = np.random.default_rng(1)
    label = np.zeros((24, 24, 24), np.uint8)
    label[4:14, 4:16, 6:18], label[15:21, 8:14, 8:14], label[6:9, 18:22, 4:20] = 1, 2, 3
    image = rng.normal(-100, 40, label.shape) + 150.0 * label
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), folder / "ct.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), folder / "seg.nii.gz")
    return {"image": str(folder / "ct.nii.gz"), "label": str(folder / "seg.nii.gz")}


def test_light_draws_what_the_loader_drew_before_the_group(case):
    """Before: crop, RandScaleIntensityd(factors=0.1), RandShiftIntensityd(offsets=0.05), all seeded by one
    Compose; ``augment=light`` must give the same patches to the last bit (the README's default run)."""
    new = train_chain(PRE, [16, 16, 16], 4, 2, augment=group("light"))
    old_list = list(train_chain(PRE, [16, 16, 16], 4, 2, augment={}).transforms)
    crop = next(i for i, t in enumerate(old_list) if isinstance(t, T.RandCropByLabelClassesd))
    old_list[crop + 1: crop + 1] = [T.RandScaleIntensityd("image", factors=0.1, prob=0.5),
                                    T.RandShiftIntensityd("image", offsets=0.05, prob=0.5)]
    old = T.Compose(old_list)
    new.set_random_state(seed=42)
    old.set_random_state(seed=42)
    for _ in range(6):
        for x, y in zip(new(dict(case)), old(dict(case)), strict=True):
            assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])


def test_light_jitter_changes_intensities_and_none_does_not(case):
    """``none`` leaves the window-scaled HU untouched (values in [0, 1] as preprocessed)."""
    chain = train_chain(PRE, [16, 16, 16], 4, 1, augment={})
    jitter = train_chain(PRE, [16, 16, 16], 4, 1, augment=group("light"))
    chain.set_random_state(seed=3)
    jitter.set_random_state(seed=3)
    plain = [chain(dict(case))[0] for _ in range(8)]
    moved = [jitter(dict(case))[0] for _ in range(8)]
    assert all(torch.equal(p["label"], m["label"]) for p, m in zip(plain, moved, strict=True))  # same crops
    assert sum(not torch.equal(p["image"], m["image"]) for p, m in zip(plain, moved, strict=True)) >= 4


def run(items: dict, dims: int, image: torch.Tensor, label: torch.Tensor, seed: int = 0) -> dict:
    chain = T.Compose(augmentation(items, dims, ["image", "label"]))
    chain.set_random_state(seed=seed)
    return chain({"image": image.clone(), "label": label.clone()})


@pytest.mark.parametrize("dims", [2, 3])
def test_mirror_with_probability_one_flips_every_axis_of_image_and_label(dims):
    image = torch.arange(4 ** dims, dtype=torch.float32).reshape(1, *(4,) * dims)
    label = (image % 5).to(torch.uint8)
    out = run({"mirror": {"prob": 1.0}}, dims, image, label)
    axes = tuple(range(1, dims + 1))
    assert torch.equal(torch.as_tensor(out["image"]), image.flip(axes))
    assert torch.equal(torch.as_tensor(out["label"]), label.flip(axes))
    assert len(augmentation({"mirror": {"prob": 0.5}}, dims, ["image"])) == dims  # one flip per axis, as nnU-Net


def test_brightness_multiplies_by_one_factor_in_nnunet_range():
    image = torch.rand(1, 8, 8, 8) + 0.5
    for seed in range(5):
        out = torch.as_tensor(run({"brightness": {"prob": 1.0, "factor": 0.25}}, 3, image,
                                  torch.zeros(1, 8, 8, 8, dtype=torch.uint8), seed)["image"])
        ratio = out / image
        assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), atol=1e-6)
        assert 0.75 <= float(ratio.flatten()[0]) <= 1.25


def test_contrast_keeps_mean_and_range_gamma_keeps_mean_and_std():
    image = torch.rand(1, 12, 12, 12)
    label = torch.zeros(1, 12, 12, 12, dtype=torch.uint8)
    contrast = torch.as_tensor(run({"contrast": {"prob": 1.0, "factor": 0.25}}, 3, image, label, 1)["image"])
    assert abs(contrast.mean() - image.mean()) < 1e-4 or contrast.min() >= image.min()  # clipping may move it
    assert contrast.min() >= image.min() - 1e-6 and contrast.max() <= image.max() + 1e-6
    assert not torch.equal(contrast, image)
    for name in ("gamma", "gamma_inverted"):
        out = torch.as_tensor(run({name: {"prob": 1.0, "range": [0.7, 1.5]}}, 3, image, label, 2)["image"])
        assert not torch.allclose(out, image)
        assert abs(float(out.mean() - image.mean())) < 1e-4 and abs(float(out.std() - image.std())) < 1e-4


@pytest.mark.parametrize("dims", [2, 3])
def test_nnunet_keeps_shape_label_values_and_dtype(dims):
    """Every item at probability 1: spatial items resample the label with nearest (no new values)."""
    items = {k: {**v, "prob": 1.0} for k, v in group("nnunet").items()}
    image = torch.rand(1, *(16,) * dims)
    label = torch.randint(0, 4, (1, *(16,) * dims), dtype=torch.uint8)
    out = run(items, dims, image, label)
    assert tuple(out["image"].shape) == tuple(image.shape) == tuple(out["label"].shape)
    assert out["label"].dtype == torch.uint8 and set(torch.unique(torch.as_tensor(out["label"])).tolist()) <= {0, 1, 2, 3}
    assert torch.isfinite(torch.as_tensor(out["image"])).all()


def test_items_switch_off_one_by_one_and_unknown_items_are_named():
    assert len(augmentation(group("nnunet"), 3, ["image", "label"])) == 13  # 9 items, 3 flips, the label cast
    assert augmentation({**group("nnunet"), "mirror": {"prob": 0}}, 2, ["image"])[-1].__class__ is not T.RandFlipd
    assert augmentation(group("none"), 3, ["image"]) == []
    with pytest.raises(CTBenchError, match="unknown augment item.*elastic: use rotation"):
        augmentation({"elastic": {"prob": 0.1}}, 3, ["image"])


def test_command_line_composes_the_group_item_by_item():
    from ctbench.config import compose

    default = compose("train")
    cfg = compose("train", ["augment=nnunet", "augment.mirror.prob=0", "augment.rotation.degrees_3d=15"])
    assert OmegaConf.to_container(default.augment) == group("light")
    assert cfg.augment.mirror.prob == 0 and cfg.augment.rotation.degrees_3d == 15 and cfg.augment.gamma.prob == 0.3


@pytest.mark.parametrize(("choice", "items"), [(None, ["brightness", "shift"]), ("none", []),
                                                ("nnunet", ["rotation", "scaling", "noise", "blur", "brightness",
                                                            "contrast", "lowres", "gamma_inverted", "gamma",
                                                            "mirror"])])
def test_the_run_builds_its_loader_with_the_chosen_group(tmp_path, choice, items):
    """``build_datamodule`` hands ``augment`` to the loader: the default run keeps its ``light`` jitter."""
    from ctbench.config import compose
    from ctbench.engine.build import build_datamodule

    cfg = compose("train", [f"paths.root_dir={tmp_path}", *([f"augment={choice}"] if choice else [])])
    assert list(build_datamodule(cfg, 1).augment) == items
