"""Cross entropy with the U-Net weight map (Ronneberger et al. 2015), survey eq. (3)."""

from __future__ import annotations

import numpy as np
import torch

from ctbench.data.weight_maps import BORDER_ON, unet_weight_map
from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss, check_inputs
from ctbench.losses.cross_entropy import voxel_cross_entropy


class UNetWeightedCrossEntropyLoss(SegmentationLoss):
    """Cross entropy weighted by the U-Net weight map (Ronneberger et al. 2015), survey eq. (3).

    ``mean_x w(x) (-log p̂_y(x))`` with ``w`` from :func:`unet_weight_map`: class balancing plus
    ``w0 exp(-(d1 + d2)² / (2 σ²))`` in the gaps between nearby objects, so that touching objects
    are separated. (The survey prints the border term as added to the BCE; in the paper it weights
    the per-pixel CE, as here.) ``ctbench train`` passes the ``weight_map`` ``[B, 1, *spatial]`` that
    the data pipeline computed once per case on the whole volume and cached
    (:class:`~ctbench.data.weight_maps.UNetWeightMapd`: ~90 ms per case once, instead of ~75 ms per
    64^3 patch at every step); called without one, the loss computes it from the target patch on the
    CPU. Hand-written: MONAI has no distance-weighted CE.

    Args:
        w0: border weight (paper: 10).
        sigma: border width in voxels (paper: about 5 pixels).
        class_balance: add the class-frequency balancing ``w_c`` (otherwise ``w_c = 1``).
        per_slice: distances within 2D slices of a 3D target (last spatial axis).
        border_on: ``background`` (the paper: the border term on background voxels between objects) or
            ``other_objects`` (on every voxel, distances to the objects not containing it: also the organ
            tissue between touching lesions inside the organ; :func:`~ctbench.data.weight_maps.border_map`).
    """

    loss_name = "unet_weighted"
    #: ``ctbench train`` gives this loss's config (``w0``, ``sigma``, ...) to the data pipeline, which caches
    #: the weight map per case and passes it as ``weight_map``
    uses_weight_map = True

    def __init__(
        self, w0: float = 10.0, sigma: float = 5.0, class_balance: bool = True, per_slice: bool = False,
        border_on: str = "background",
    ) -> None:
        super().__init__()
        if w0 < 0 or sigma <= 0:
            raise CTBenchError(f"loss 'unet_weighted': w0={w0} must be >= 0 and sigma={sigma} > 0")
        if border_on not in BORDER_ON:
            raise CTBenchError(f"loss 'unet_weighted': border_on={border_on!r} is not known: use "
                               f"{' or '.join(BORDER_ON)}")
        self.w0, self.sigma = float(w0), float(sigma)
        self.class_balance, self.per_slice, self.border_on = class_balance, per_slice, border_on

    def weight_maps(self, labels: torch.Tensor) -> torch.Tensor:
        """The weight map of each sample of ``[B, 1, *spatial]`` labels, on the labels' device."""
        maps = [
            unet_weight_map(sample[0], self.w0, self.sigma, self.class_balance, self.per_slice, self.border_on)
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
