"""Whole-volume prediction: sliding windows (MONAI) for 3D patches or 2D axial slices, TTA, and the
mapping of class probabilities back onto the input file's own voxel grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.transforms import SpatialResample
from torch import nn

from ctbench.engine.checkpoint_schema import WINDOWS_2D

#: a whole-slice window is padded to a multiple of this (the deepest 2D networks downsample 32x)
SLICE_MULTIPLE = 32


class SlidingWindowPredictor:
    """Softmax probabilities of a whole volume ``[B, 1, X, Y, Z]`` by Gaussian-blended sliding windows.

    For a 2D network the window is one axial slice deep (``roi = (h, w, 1)``) and the network sees
    ``[N, C, h, w]``; the volume is always 3D.

    Args:
        roi: window size, 3 values (3D) or 2 (2D slices).
        overlap: fraction of overlap between neighbouring windows.
        sw_batch_size: windows per forward pass.
        mode: ``gaussian`` or ``constant`` blending.
        tta_flips: axes (0, 1, 2 = x, y, z) to mirror for test-time augmentation; empty for none.
        window_2d: ``patch`` (2D: windows of ``roi``) or ``slice`` (2D: one window per axial slice, the
            slice padded with the volume's minimum, i.e. air, to a multiple of :data:`SLICE_MULTIPLE`).
            A 171 x 131 slice is four overlapping 128 x 128 windows (65,536 pixels) or one 192 x 160 window
            (30,720): 1.6-2.1x faster per volume on one CPU thread (``scripts/window_2d_benchmark.py``).
    """

    def __init__(self, roi: Sequence[int], overlap: float = 0.25, sw_batch_size: int = 4,
                 mode: str = "gaussian", tta_flips: Sequence[int] = (), window_2d: str = "patch") -> None:
        self.dims = len(roi)
        if window_2d not in WINDOWS_2D:
            raise ValueError(f"window_2d must be one of {WINDOWS_2D}, not {window_2d!r}")
        self.roi = tuple(roi) if self.dims == 3 else (*roi, 1)
        self.overlap = (overlap, overlap, 0.0) if self.dims == 2 else overlap
        self.sw_batch_size, self.mode, self.tta_flips = sw_batch_size, mode, tuple(tta_flips)
        self.whole_slice = self.dims == 2 and window_2d == "slice"

    def window(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """The window for a volume of ``spatial`` size: ``roi``, or its whole padded slice (``window_2d=slice``)."""
        if not self.whole_slice:
            return self.roi
        return (*(-(-int(s) // SLICE_MULTIPLE) * SLICE_MULTIPLE for s in spatial[:2]), 1)

    def _network(self, model: nn.Module):
        if self.dims == 3:
            return model
        return lambda x: model(x[..., 0])[..., None]

    @torch.no_grad()
    def __call__(self, model: nn.Module, volume: torch.Tensor) -> torch.Tensor:
        network = self._network(model)
        image = volume.as_tensor() if isinstance(volume, MetaTensor) else volume

        roi = self.window(image.shape[2:])
        cval = float(image.min()) if self.whole_slice else 0.0

        def run(x: torch.Tensor) -> torch.Tensor:
            logits = sliding_window_inference(x, roi, self.sw_batch_size, network, overlap=self.overlap,
                                              mode=self.mode, cval=cval, progress=False)
            return torch.softmax(logits.float(), dim=1)

        probs = run(image)
        for axis in self.tta_flips:
            dim = 2 + axis
            probs += run(image.flip(dim)).flip(dim)
        return probs / (1 + len(self.tta_flips))


def probs_on_original_grid(probs: torch.Tensor, affine: torch.Tensor, original_affine: torch.Tensor,
                           original_shape: Sequence[int]) -> torch.Tensor:
    """Resample ``[C, *spatial]`` probabilities on the preprocessed grid (``affine``) onto the input
    file's grid (bilinear, float32): ``[C, *original_shape]``, all 0 outside the preprocessed field of view."""
    meta = MetaTensor(probs.float(), affine=affine)
    # float32 resampling (MONAI's default is float64): ~15 % faster, arg-max labels agree to 0.999997
    resampled = SpatialResample(mode="bilinear", padding_mode="zeros", align_corners=True, dtype=torch.float32)(
        meta, dst_affine=torch.as_tensor(original_affine, dtype=torch.float64), spatial_size=tuple(original_shape))
    return resampled.as_tensor()


def channel_argmax(probs: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``probs.argmax(dim)`` as uint8 (the first class on ties), in one pass over the channels: torch's CPU
    arg-max along a strided channel axis is 7.6-8.4x slower (4 classes, 171 x 131 x 67, one thread:
    ``scripts/argmax_benchmark.py``). Written for finite values: where torch's arg-max picks a NaN, this
    keeps the largest number."""
    channels = probs.unbind(dim)
    best, labels = channels[0].clone(), torch.zeros_like(channels[0], dtype=torch.uint8)
    for c, channel in enumerate(channels[1:], start=1):
        labels[channel > best] = c
        torch.maximum(best, channel, out=best)
    return labels


def label_map(probs: torch.Tensor) -> np.ndarray:
    """Arg-max of ``[C, *spatial]`` probabilities as uint8; all-zero voxels (outside the field of view) are
    background. Adds 1e-6 to ``probs[0]`` in place (a copy would double the memory of a large volume)."""
    probs[0] += 1e-6
    return channel_argmax(probs, 0).numpy()


def to_original_grid(probs: torch.Tensor, affine: torch.Tensor, original_affine: torch.Tensor,
                     original_shape: Sequence[int]) -> np.ndarray:
    """The label map of ``[C, *spatial]`` probabilities on the input file's grid: its exact shape and
    orientation; voxels outside the preprocessed field of view (cropped air) become background."""
    return label_map(probs_on_original_grid(probs, affine, original_affine, original_shape))
