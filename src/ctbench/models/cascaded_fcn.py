"""Cascaded FCN — Christ et al. 2016, "Automatic Liver and Lesion Segmentation in CT Using Cascaded
Fully Convolutional Neural Networks and 3D Conditional Random Fields" (MICCAI 2016).

Novelty: **two FCNs in cascade**: the first segments the organ (liver) in the whole image; the
second segments the lesion only inside the organ's bounding box, cropped from the image, so the
small lesion class is learned at the organ's scale and without distractors elsewhere. Stage 1 is
trained on the full label map with lesions counted as organ; stage 2 on ground-truth organ crops
(:class:`ctbench.engine.cascade.CascadeSegmentationModule`). At inference ``forward`` chains them
and returns C-class log-probabilities: ``p(organ) = p1(organ) (1 - p2)``, ``p(lesion) = p1(organ)
p2`` inside the predicted organ's box, every other class from stage 1; so the report scores both.

Both stages are ctbench :class:`~ctbench.models.unet.UNet` networks (MONAI ``UNet``; Christ et al. used
U-Nets); the cascade itself is hand-written (MONAI has none).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ctbench.errors import CTBenchError
from ctbench.models.base import SegmentationNet, load_pretrained
from ctbench.models.unet import UNet


class CascadedFCN(SegmentationNet):
    """Organ network on the image, lesion network on the organ crop, chained at inference.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes C (background, ..., organ, ..., lesion).
        organ_class: label of the organ (liver = 1 in the synthetic phantom).
        lesion_class: label of the lesion inside it (-1: the last class).
        channels, strides, num_res_units, norm: each stage's U-Net (as ``model=unet``).
        margin: voxels added around the organ's bounding box before cropping.
        preset: ``paper`` for U-Net paper widths in both stages.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "cascaded_fcn"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, organ_class: int = 1,
                 lesion_class: int = -1, channels: Sequence[int] = (16, 32, 64, 128),
                 strides: Sequence[int] = (2, 2, 2), num_res_units: int = 2, norm: str = "instance",
                 margin: int = 4, preset: str | None = None, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        lesion = lesion_class % out_channels if out_channels else lesion_class
        if out_channels < 3 or not 0 < organ_class < out_channels or lesion == organ_class or lesion == 0:
            raise CTBenchError(
                f"model 'cascaded_fcn' needs >= 3 classes with distinct organ and lesion labels, got "
                f"num_classes={out_channels}, organ_class={organ_class}, lesion_class={lesion_class}: "
                "set model.organ_class / model.lesion_class", exit_code=2)
        self.organ_class, self.lesion_class, self.margin = organ_class, lesion, int(margin)
        self.stage1 = UNet(spatial_dims, in_channels, out_channels, channels, strides, num_res_units, norm,
                           preset=preset)
        self.stage2 = UNet(spatial_dims, in_channels, 2, channels, strides, num_res_units, norm, preset=preset)
        self.stage1.model_name = self.stage2.model_name = self.model_name
        self.size_divisor = self.stage1.size_divisor
        self.min_size = self.stage1.min_size
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def merge_lesion(self, label: torch.Tensor) -> torch.Tensor:
        """Stage 1's target: the lesion counted as organ."""
        return torch.where(label == self.lesion_class, torch.full_like(label, self.organ_class), label)

    def crop_box(self, mask: torch.Tensor) -> tuple[slice, ...] | None:
        """The organ's bounding box (+ margin) in ``mask [*spatial]``, grown to a size the stage-2 net
        accepts (a multiple of ``size_divisor``, at least ``min_size``); ``None`` if the mask is empty."""
        if not bool(mask.any()):
            return None
        k = self.size_divisor
        box = []
        for axis, n in enumerate(mask.shape):
            other = tuple(a for a in range(mask.ndim) if a != axis)
            hit = mask.any(dim=other) if other else mask
            idx = torch.nonzero(hit).flatten()
            lo, hi = int(idx.min()) - self.margin, int(idx.max()) + 1 + self.margin
            size = max(hi - lo, self.min_size)
            size = min(-(-size // k) * k, n)
            lo = min(max(0, (lo + hi - size) // 2), n - size)
            box.append(slice(lo, lo + size))
        return tuple(box)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = torch.softmax(self.stage1.net(x), 1)
        organ = p1.argmax(1) == self.organ_class
        q = torch.zeros_like(p1[:, 0])
        for i in range(x.shape[0]):
            box = self.crop_box(organ[i])
            if box is not None:
                crop = x[(i, slice(None), *box)].unsqueeze(0)
                q[(i, *box)] = torch.softmax(self.stage2.net(crop), 1)[0, 1]
        o, les = self.organ_class, self.lesion_class
        parts = list(p1.unbind(1))
        parts[les] = p1[:, les] + p1[:, o] * q
        parts[o] = p1[:, o] * (1 - q)
        return torch.stack(parts, 1).clamp_min(1e-8).log()
