"""CT preprocessing and patch sampling as MONAI transform chains.

One deterministic chain (load with geometry, reorient, resample, HU window, normalise, crop to the
body, precompute class indices) is cached; the random tail samples class-balanced patches from the
cached volume. ``dims=2`` samples axial slices (patch depth 1, squeezed) from the same volumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai import transforms as T

from ctbench.errors import CTBenchError

#: HU windows (lower, upper) from level/width presets used in radiology reading rooms.
WINDOWS: dict[str, tuple[float, float]] = {
    "abdomen": (-160.0, 240.0),  # L40 W400
    "liver": (-45.0, 105.0),  # L30 W150
    "lung": (-1350.0, 150.0),  # L-600 W1500
    "bone": (-500.0, 1300.0),  # L400 W1800
    "brain": (0.0, 80.0),  # L40 W80
}

BODY_HU = -500.0  # voxels above this are inside the patient (air is about -1000 HU)


def window_bounds(window: str | Sequence[float]) -> tuple[float, float]:
    """The (lower, upper) HU bounds of a preset name or a custom ``[lower, upper]`` pair."""
    if isinstance(window, str):
        if window not in WINDOWS:
            raise CTBenchError(f"unknown HU window '{window}': use one of {', '.join(WINDOWS)} or [lower, upper]",
                               exit_code=2)
        return WINDOWS[window]
    lower, upper = (float(v) for v in window)
    if not lower < upper:
        raise CTBenchError(f"HU window [{lower}, {upper}] is empty: the lower bound must be below the upper")
    return lower, upper


def is_body(x: torch.Tensor) -> torch.Tensor:
    """Foreground-crop selector: voxels denser than air (module-level so workers can pickle it)."""
    return x > BODY_HU


def preprocessing(pre: Mapping[str, Any], keys: Sequence[str], track_meta: bool,
                  zscore: tuple[float, float] | None = None) -> list:
    """Deterministic chain: load, channel first, orient, resample, window/normalise, crop to body.

    Args:
        pre: the dataset's ``preprocessing`` block (orientation, spacing, window, normalize, crop_foreground).
        keys: ``["image", "label"]`` or ``["image"]`` (prediction).
        track_meta: keep MetaTensors (needed to map predictions back to the input geometry).
        zscore: dataset foreground (mean, std) in HU when ``normalize=zscore``.
    """
    lower, upper = window_bounds(pre["window"])
    modes = ["bilinear" if pre.get("interpolation", "linear") == "linear" else 3, "nearest"][: len(keys)]
    chain = [
        T.LoadImaged(keys, image_only=True, ensure_channel_first=True),
        T.Orientationd(keys, axcodes=pre["orientation"], labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        T.Spacingd(keys, pixdim=tuple(pre["spacing"]), mode=modes, padding_mode="border"),
    ]
    if pre.get("crop_foreground", True):
        chain.append(T.CropForegroundd(keys, source_key="image", select_fn=is_body, margin=2, allow_smaller=True))
    if pre["normalize"] == "window":
        chain.append(T.ScaleIntensityRanged("image", a_min=lower, a_max=upper, b_min=0.0, b_max=1.0, clip=True))
    elif pre["normalize"] == "zscore":
        if zscore is None:
            raise CTBenchError("normalize=zscore needs dataset foreground statistics; none were computed")
        chain += [T.ThresholdIntensityd("image", threshold=upper, above=False, cval=upper),
                  T.ThresholdIntensityd("image", threshold=lower, above=True, cval=lower),
                  T.NormalizeIntensityd("image", subtrahend=zscore[0], divisor=zscore[1])]
    else:
        raise CTBenchError(f"unknown normalize='{pre['normalize']}': use window or zscore", exit_code=2)
    chain.append(T.EnsureTyped(keys, dtype=torch.float32, track_meta=track_meta))
    return chain


#: The ``augment`` items in the order they are applied: spatial first, intensity next, mirroring last, as in
#: nnU-Net v2's ``nnUNetTrainer.get_training_transforms`` (``shift`` is ``augment=light``'s additive jitter).
AUGMENT_ITEMS = ("rotation", "scaling", "noise", "blur", "brightness", "shift", "contrast", "lowres",
                 "gamma_inverted", "gamma", "mirror")


def augmentation(augment: Mapping[str, Mapping[str, Any]], spatial_dims: int, keys: Sequence[str],
                 label_dtype: torch.dtype = torch.uint8) -> list:
    """MONAI random transforms for the ``augment`` config group, one per item whose ``prob`` is above 0.

    ``augment=nnunet`` re-creates nnU-Net v2's default pipeline (Isensee et al. 2021; values and their
    source lines in ``configs/augment/nnunet.yaml``, differences in docs/augmentation.md). Spatial items move
    every key (image bilinear, label nearest, U-Net weight map bilinear); intensity items touch the image
    only; the label leaves with ``label_dtype``. ``spatial_dims`` 2 rotates in the slice plane only and
    mirrors 2 axes.
    """
    unknown = sorted(set(augment) - set(AUGMENT_ITEMS))
    if unknown:
        raise CTBenchError(f"unknown augment item(s) {', '.join(unknown)}: use {', '.join(AUGMENT_ITEMS)}",
                           exit_code=2)
    spatial_modes = ["nearest" if k == "label" else "bilinear" for k in keys]
    zoom_modes = ["nearest" if k == "label" else ("trilinear" if spatial_dims == 3 else "bilinear") for k in keys]
    chain = []
    for name in AUGMENT_ITEMS:
        item = augment.get(name)
        if item is None or float(item["prob"]) <= 0:
            continue
        prob = float(item["prob"])
        if name == "rotation":
            angle = np.deg2rad(float(item[f"degrees_{spatial_dims}d"]))
            ranges = [angle] if spatial_dims == 2 else [angle] * 3
            chain.append(T.RandRotated(keys, *ranges, prob=prob, mode=spatial_modes, padding_mode="border"))
        elif name == "scaling":
            low, high = item["range"]
            chain.append(T.RandZoomd(keys, prob=prob, min_zoom=low, max_zoom=high, mode=zoom_modes,
                                     padding_mode="edge", keep_size=True))
        elif name == "noise":
            chain.append(T.RandGaussianNoised("image", prob=prob, std=float(item["std"]), sample_std=True))
        elif name == "blur":
            sigma = tuple(item["sigma"])
            chain.append(T.RandGaussianSmoothd("image", sigma, sigma, sigma, prob=prob))
        elif name == "brightness":
            chain.append(T.RandScaleIntensityd("image", factors=float(item["factor"]), prob=prob))
        elif name == "shift":
            chain.append(T.RandShiftIntensityd("image", offsets=float(item["offset"]), prob=prob))
        elif name == "contrast":
            chain.append(T.RandScaleIntensityFixedMeand("image", factors=float(item["factor"]), fixed_mean=True,
                                                        preserve_range=True, prob=prob))
        elif name == "lowres":
            chain.append(T.RandSimulateLowResolutiond("image", prob=prob, zoom_range=tuple(item["zoom"]),
                                                      upsample_mode=zoom_modes[0]))
        elif name in ("gamma", "gamma_inverted"):
            chain.append(T.RandAdjustContrastd("image", prob=prob, gamma=tuple(item["range"]),
                                               invert_image=name == "gamma_inverted", retain_stats=True))
        else:  # mirror: each axis on its own, as nnU-Net's MirrorTransform
            chain += [T.RandFlipd(keys, prob=prob, spatial_axis=axis) for axis in range(spatial_dims)]
    if "label" in keys and any(augment.get(n, {}).get("prob", 0) > 0 for n in ("rotation", "scaling")):
        chain.append(T.EnsureTyped("label", dtype=label_dtype, track_meta=False))
    return chain


def train_chain(pre: Mapping[str, Any], patch: Sequence[int], num_classes: int, samples: int,
                zscore: tuple[float, float] | None = None, weight_map: Mapping[str, Any] | None = None,
                augment: Mapping[str, Any] | None = None, crop_ratios: Sequence[float] | None = None) -> T.Compose:
    """Cached preprocessing plus class-balanced random patches; ``len(patch) == 2`` samples axial slices.

    ``crop_ratios``: how often a patch is centred on each class (background first), e.g. ``[1, 1, 1, 1, 4]``
    centres half the patches on lesions; None: every class equally often (MONAI's default).

    ``weight_map``: the ``unet_weighted`` loss's parameters (``w0``, ``sigma``, ``class_balance``,
    ``per_slice``, ``border_on``); the chain then also caches each case's U-Net weight map and crops it as ``weight``.
    ``augment``: the ``augment`` config group (:func:`augmentation`), applied to each
    patch after cropping (2D: to the squeezed slice); None or ``{}`` for no augmentation.
    """
    spatial = tuple(patch) if len(patch) == 3 else (*patch, 1)
    keys = ["image", "label"] + (["weight"] if weight_map is not None else [])
    label_dtype = torch.uint8 if num_classes <= 256 else torch.int16
    chain = preprocessing(pre, ["image", "label"], track_meta=False, zscore=zscore)
    chain += [
        T.SpatialPadd(["image", "label"], spatial_size=spatial),
        T.ClassesToIndicesd("label", num_classes=num_classes, max_samples_per_class=20000),
        # integer labels: a quarter of float32's cache, and the loss needs no integer-valued check
        T.EnsureTyped("label", dtype=label_dtype, track_meta=False),
    ]
    if weight_map is not None:
        from ctbench.data.weight_maps import UNetWeightMapd

        # 2D training sees axial slices: the border term is measured within each slice there
        per_slice = bool(weight_map.get("per_slice", False)) or len(patch) == 2
        chain.append(UNetWeightMapd("label", "weight", float(weight_map.get("w0", 10.0)),
                                    float(weight_map.get("sigma", 5.0)), bool(weight_map.get("class_balance", True)),
                                    per_slice, str(weight_map.get("border_on", "background"))))
    chain += [
        # --- cached above, random below ---
        T.RandCropByLabelClassesd(keys, label_key="label", spatial_size=spatial,
                                  ratios=None if crop_ratios is None else [float(r) for r in crop_ratios],
                                  num_classes=num_classes, num_samples=samples,
                                  indices_key="label_cls_indices", warn=False),
    ]
    if len(patch) == 2:
        chain.append(T.SqueezeDimd(keys, dim=-1))
    chain += augmentation(augment or {}, len(patch), keys, label_dtype)
    # plain tensors into the training step: MetaTensor dispatch costs ~5 % of a 96^3 CPU step
    chain += [T.DeleteItemsd("label_cls_indices"), T.EnsureTyped(keys, track_meta=False)]
    return T.Compose(chain)


def eval_chain(pre: Mapping[str, Any], with_label: bool, zscore: tuple[float, float] | None = None) -> T.Compose:
    """Whole-volume preprocessing for validation, test and prediction (MetaTensors kept for inversion)."""
    return T.Compose(preprocessing(pre, ["image", "label"] if with_label else ["image"], track_meta=True,
                                   zscore=zscore))


def foreground_statistics(cases: Sequence[Mapping[str, str]], window: tuple[float, float],
                          max_voxels: int = 100_000) -> tuple[float, float]:
    """Mean and std of HU inside labelled foreground (clipped to the window), as nnU-Net's CT scheme."""
    import nibabel as nib

    from ctbench.data.readers.base import image_files

    rng = np.random.default_rng(0)
    samples = []
    for case in cases:
        image = np.asarray(nib.load(image_files(case)[0]).dataobj, dtype=np.float32)  # channel 0: the CT
        label = np.asarray(nib.load(case["label"]).dataobj)
        values = np.clip(image[label > 0], *window)
        if values.size:
            samples.append(rng.choice(values, size=min(values.size, max_voxels), replace=False))
    if not samples:
        raise CTBenchError("normalize=zscore found no labelled foreground in the training cases: use normalize=window")
    values = np.concatenate(samples)
    return float(values.mean()), float(max(values.std(), 1e-3))
