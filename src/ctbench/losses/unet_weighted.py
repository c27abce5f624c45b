"""Cross entropy with the U-Net weight map (Ronneberger et al. 2015), survey eq. (3)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss, check_inputs
from ctbench.losses.cross_entropy import voxel_cross_entropy

#: Border terms below ``w0 / 1000`` are not computed: distances are only measured up to
#: ``sigma * sqrt(2 ln 1000)`` around each object.
_CUTOFF = math.sqrt(2.0 * math.log(1000.0))


def class_balance_map(label: np.ndarray) -> np.ndarray:
    """``w_c(x) = N / (K n_y(x))`` for ``K`` present classes of ``n_k`` voxels: mean 1, rare classes up."""
    values, inverse, counts = np.unique(label, return_inverse=True, return_counts=True)
    weights = label.size / (len(values) * counts.astype(np.float64))
    return weights[inverse].reshape(label.shape).astype(np.float32)


def border_map(label: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """``w0 exp(-(d1 + d2)² / (2 σ²))`` on background voxels, 0 elsewhere (distances in voxels).

    ``d1``, ``d2``: distances to the nearest and second-nearest object, an object being a connected
    component of one foreground class. Zero with fewer than two objects.
    """
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
        near, second = d1[box], d2[box]
        d2[box] = np.minimum(second, np.maximum(near, dist))
        d1[box] = np.minimum(near, dist)
    background = (label == 0) & np.isfinite(d2)
    result[background] = w0 * np.exp(-((d1[background] + d2[background]) ** 2) / (2.0 * sigma**2))
    return result


def unet_weight_map(
    label: np.ndarray, w0: float = 10.0, sigma: float = 5.0, class_balance: bool = True, per_slice: bool = False
) -> np.ndarray:
    """The U-Net weight map ``w(x) = w_c(x) + w0 exp(-(d1(x) + d2(x))² / (2 σ²))`` of one label map.

    A pure function of its arguments (float32 result, the label's shape), so a data pipeline can
    compute it once per case and cache it. ``per_slice`` measures distances within each 2D slice
    of a 3D map (the last axis, axial after RAS reorientation) as the 2D U-Net paper does;
    otherwise in 2D or 3D as given. ``w_c`` is 1 without ``class_balance``.
    """
    label = np.asarray(label)
    balance = class_balance_map(label) if class_balance else np.ones(label.shape, dtype=np.float32)
    if per_slice and label.ndim == 3:
        border = np.stack([border_map(label[..., k], w0, sigma) for k in range(label.shape[-1])], axis=-1)
    else:
        border = border_map(label, w0, sigma)
    return balance + border


class UNetWeightedCrossEntropyLoss(SegmentationLoss):
    """Cross entropy weighted by the U-Net weight map (Ronneberger et al. 2015), survey eq. (3).

    ``mean_x w(x) (-log p̂_y(x))`` with ``w`` from :func:`unet_weight_map`: class balancing plus
    ``w0 exp(-(d1 + d2)² / (2 σ²))`` in the gaps between nearby objects, so that touching objects
    are separated. (The survey prints the border term as added to the BCE; in the paper it weights
    the per-pixel CE, as here.) Pass a precomputed ``weight_map`` ``[B, 1, *spatial]`` (e.g. cached
    by the data pipeline) or let the loss compute it from the target on the CPU. Hand-written:
    MONAI has no distance-weighted CE.

    Args:
        w0: border weight (paper: 10).
        sigma: border width in voxels (paper: about 5 pixels).
        class_balance: add the class-frequency balancing ``w_c`` (otherwise ``w_c = 1``).
        per_slice: distances within 2D slices of a 3D target (last spatial axis).
    """

    loss_name = "unet_weighted"

    def __init__(
        self, w0: float = 10.0, sigma: float = 5.0, class_balance: bool = True, per_slice: bool = False
    ) -> None:
        super().__init__()
        if w0 < 0 or sigma <= 0:
            raise CTBenchError(f"loss 'unet_weighted': w0={w0} must be >= 0 and sigma={sigma} > 0")
        self.w0, self.sigma = float(w0), float(sigma)
        self.class_balance, self.per_slice = class_balance, per_slice

    def weight_maps(self, labels: torch.Tensor) -> torch.Tensor:
        """The weight map of each sample of ``[B, 1, *spatial]`` labels, on the labels' device."""
        maps = [
            unet_weight_map(sample[0], self.w0, self.sigma, self.class_balance, self.per_slice)
            for sample in labels.cpu().numpy()
        ]
        return torch.from_numpy(np.stack(maps)[:, None]).to(labels.device)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.input_checks:
            logits, labels = check_inputs(self.loss_name, logits, target)
        else:
            logits, labels = logits.float(), target.long()
        if weight_map is None:
            weight_map = self.weight_maps(labels)
        elif tuple(weight_map.shape) != tuple(labels.shape):
            raise CTBenchError(
                f"loss 'unet_weighted': weight_map shape {tuple(weight_map.shape)} does not match target "
                f"{tuple(labels.shape)}; compute it with unet_weight_map() for each sample"
            )
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self.compute(logits, labels, weight_map.float())

    def compute(
        self, logits: torch.Tensor, labels: torch.Tensor, weight_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        if weight_map is None:
            weight_map = self.weight_maps(labels)
        return (weight_map[:, 0] * voxel_cross_entropy(logits, labels)).mean()
