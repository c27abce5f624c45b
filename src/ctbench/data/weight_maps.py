"""The U-Net weight map (Ronneberger et al. 2015) of a label map, and the transform that caches it.

``w(x) = w_c(x) + w0 exp(-(d1(x) + d2(x))^2 / (2 sigma^2))``: class balancing plus a border term in the
gaps between nearby objects (survey eq. (3); the ``unet_weighted`` loss weights its cross entropy with
it). Computed with scipy's exact Euclidean distance transform per object. Here, in the data layer, so
the training chain can compute it once per case in its cached part (:class:`UNetWeightMapd`) instead of
the loss recomputing it for every patch at every step.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform
from scipy import ndimage

#: Border terms below ``w0 / 1000`` are not computed: distances are only measured up to
#: ``sigma * sqrt(2 ln 1000)`` around each object.
_CUTOFF = math.sqrt(2.0 * math.log(1000.0))
#: Voxels that get the border term (``border_on``): the background between objects (the paper's binary
#: case), or every voxel outside the objects it lies between (an organ's tissue between lesions in it too).
BORDER_ON = ("background", "other_objects")


def class_balance_map(label: np.ndarray) -> np.ndarray:
    """``w_c(x) = N / (K n_y(x))`` for ``K`` present classes of ``n_k`` voxels: mean 1, rare classes up."""
    values, inverse, counts = np.unique(label, return_inverse=True, return_counts=True)
    weights = label.size / (len(values) * counts.astype(np.float64))
    return weights[inverse].reshape(label.shape).astype(np.float32)


def border_map(label: np.ndarray, w0: float = 10.0, sigma: float = 5.0,
               border_on: str = "background") -> np.ndarray:
    """``w0 exp(-(d1 + d2)² / (2 σ²))`` (distances in voxels) where ``border_on`` says, 0 elsewhere.

    ``d1``, ``d2``: distances to the nearest and second-nearest object, an object being a connected
    component of one foreground class. Zero with fewer than two objects. ``border_on="background"``: on
    background voxels, as in the paper, whose separation border between touching cells is background.
    ``"other_objects"``: on every voxel, ``d1``, ``d2`` measured to the objects that do not contain it; the
    same on background, and it also weights the tissue of a class that separates two objects inside it (the
    liver voxels between two touching lesions), which the paper's binary labels never have.
    """
    if border_on not in BORDER_ON:
        raise ValueError(f"border_on={border_on!r}: use {' or '.join(BORDER_ON)}")
    objects: list[np.ndarray] = []
    for value in np.unique(label[label > 0]):
        components, count = ndimage.label(label == value)
        objects += [components == k for k in range(1, count + 1)]
    result = np.zeros(label.shape, dtype=np.float32)
    if len(objects) < 2:
        return result
    margin = int(math.ceil(sigma * _CUTOFF))
    d1 = np.full(label.shape, np.inf)
    d2 = np.full(label.shape, np.inf)
    for mask in objects:
        box = tuple(
            slice(max(s.start - margin, 0), min(s.stop + margin, n))
            for s, n in zip(ndimage.find_objects(mask.astype(np.uint8))[0], label.shape, strict=True)
        )
        dist = ndimage.distance_transform_edt(~mask[box])
        if border_on == "other_objects":
            dist[mask[box]] = np.inf  # an object does not separate itself from another
        near, second = d1[box], d2[box]
        d2[box] = np.minimum(second, np.maximum(near, dist))
        d1[box] = np.minimum(near, dist)
    between = np.isfinite(d2) & ((label == 0) if border_on == "background" else True)
    result[between] = w0 * np.exp(-((d1[between] + d2[between]) ** 2) / (2.0 * sigma**2))
    return result


def unet_weight_map(
    label: np.ndarray, w0: float = 10.0, sigma: float = 5.0, class_balance: bool = True, per_slice: bool = False,
    border_on: str = "background",
) -> np.ndarray:
    """The U-Net weight map ``w(x) = w_c(x) + w0 exp(-(d1(x) + d2(x))² / (2 σ²))`` of one label map.

    A pure function of its arguments (float32 result, the label's shape), so a data pipeline can
    compute it once per case and cache it. ``per_slice`` measures distances within each 2D slice
    of a 3D map (the last axis, axial after RAS reorientation) as the 2D U-Net paper does;
    otherwise in 2D or 3D as given. ``w_c`` is 1 without ``class_balance``; ``border_on``: :func:`border_map`.
    """
    label = np.asarray(label)
    balance = class_balance_map(label) if class_balance else np.ones(label.shape, dtype=np.float32)
    if per_slice and label.ndim == 3:
        border = np.stack([border_map(label[..., k], w0, sigma, border_on) for k in range(label.shape[-1])],
                          axis=-1)
    else:
        border = border_map(label, w0, sigma, border_on)
    return balance + border


class UNetWeightMapd(MapTransform):
    """Adds ``weight_key``: the U-Net weight map ``[1, *spatial]`` (float32) of the (channel-first) label.

    Put in the cached part of a training chain, after padding, so random crops then cut the same
    window out of image, label and weight map; the map is computed once per case on the whole volume
    (objects outside a patch still shape the border term near its edge).
    """

    def __init__(self, label_key: Hashable = "label", weight_key: str = "weight", w0: float = 10.0,
                 sigma: float = 5.0, class_balance: bool = True, per_slice: bool = False,
                 border_on: str = "background") -> None:
        super().__init__([label_key])
        self.label_key, self.weight_key = label_key, weight_key
        self.w0, self.sigma, self.class_balance, self.per_slice = w0, sigma, class_balance, per_slice
        self.border_on = border_on

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        label = np.asarray(torch.as_tensor(out[self.label_key]).cpu())[0]
        weight = unet_weight_map(label, self.w0, self.sigma, self.class_balance, self.per_slice, self.border_on)
        out[self.weight_key] = torch.from_numpy(weight[None])
        return out
