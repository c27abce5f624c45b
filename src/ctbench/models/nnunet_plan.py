"""nnU-Net's network topology planning: kernel sizes and strides from the patch size and the voxel spacing.

Isensee et al. 2021, "nnU-Net: a self-configuring method for deep learning-based biomedical image
segmentation" (Nature Methods 18:203; arXiv 2018), section "Network topology": an axis is downsampled
(stride 2) while its feature map is at least twice ``min_edge`` (4 voxels) and its current spacing is
within a factor 2 of the finest current spacing, so anisotropic volumes are first pooled in-plane only; a
convolution is 3 wide along an axis once that axis is within a factor 2 of the finest spacing (1 before,
i.e. in-plane kernels ``3 x 3 x 1`` at the start of thick-slice CT); the bottleneck is always 3 wide.
Widths start at 32 and double per stage up to 320 (3D) or 512 (2D).

A port of ``get_pool_and_conv_props`` (``nnunetv2/experiment_planning/experiment_planners/network_topology.py``)
with one difference: nnU-Net indexes the list of the still-poolable axes' spacings by the axis number
when it sets the kernel sizes, which can pick another axis's spacing once some axis stops pooling; here
each axis's own spacing is used. Hand-written: MONAI's ``DynUNet`` takes kernels and strides but does not
plan them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ctbench.errors import CTBenchError

#: nnU-Net's ``UNet_featuremap_min_edge_length``, base width and width caps
MIN_EDGE = 4
BASE_FEATURES = 32
MAX_FEATURES = {2: 512, 3: 320}
#: the patch planned for when a network is built without one (``create_model``): nnU-Net-like CT sizes
DEFAULT_PATCH = {2: (256, 256), 3: (128, 128, 128)}


@dataclass(frozen=True)
class UNetPlan:
    """One planned topology: per stage a kernel size and the stride that enters it (the first stage's is 1)."""

    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    patch_size: tuple[int, ...]

    @property
    def n_stages(self) -> int:
        return len(self.strides)

    @property
    def divisor(self) -> tuple[int, ...]:
        """What every spatial size must be a multiple of, per axis (the product of the strides)."""
        return tuple(math.prod(s[d] for s in self.strides) for d in range(len(self.patch_size)))

    def features(self, base: int = BASE_FEATURES, maximum: int | None = None) -> tuple[int, ...]:
        """nnU-Net's widths: ``min(maximum, base * 2^i)`` per stage (``maximum`` 320 in 3D, 512 in 2D)."""
        cap = MAX_FEATURES[len(self.patch_size)] if maximum is None else maximum
        return tuple(min(cap, base * 2**i) for i in range(self.n_stages))


def plan_unet(patch_size: Sequence[int], spacing: Sequence[float] | None = None, min_edge: int = MIN_EDGE,
              max_pool: int = 999999) -> UNetPlan:
    """nnU-Net's kernels and strides for ``patch_size`` (voxels) at ``spacing`` (mm, isotropic when None).

    The returned ``patch_size`` is the given one rounded up to a multiple of the total stride per axis (as
    nnU-Net's ``pad_shape``).
    """
    dim = len(patch_size)
    spacing = [1.0] * dim if spacing is None else [float(s) for s in spacing][:dim]  # 2D: the slice's axes
    if len(spacing) != dim or any(s <= 0 for s in spacing) or any(int(p) < 1 for p in patch_size):
        raise CTBenchError(f"nnU-Net planning needs a positive patch size and spacing of the same length, got "
                           f"patch {list(patch_size)} and spacing {spacing}: check dataset.patch_size_{dim}d and "
                           "dataset.preprocessing.spacing", exit_code=2)
    current_spacing, current_size = list(spacing), [float(p) for p in patch_size]
    strides: list[tuple[int, ...]] = [(1,) * dim]
    kernels: list[tuple[int, ...]] = []
    pools_per_axis, kernel = [0] * dim, [1] * dim
    while True:
        valid = [i for i in range(dim) if current_size[i] >= 2 * min_edge]
        if not valid:
            break
        finest = min(current_spacing[i] for i in valid)
        valid = [i for i in valid if current_spacing[i] / finest < 2 and pools_per_axis[i] < max_pool]
        if not valid or (len(valid) == 1 and current_size[valid[0]] < 3 * min_edge):
            break
        kernel = [3 if k == 3 or current_spacing[d] / min(current_spacing) < 2 else 1 for d, k in enumerate(kernel)]
        stride = tuple(2 if d in valid else 1 for d in range(dim))
        for d in valid:
            pools_per_axis[d] += 1
            current_spacing[d] *= 2
            current_size[d] = math.ceil(current_size[d] / 2)
        strides.append(stride)
        kernels.append(tuple(kernel))
    kernels.append((3,) * dim)  # the bottleneck
    divisor = [2**n for n in pools_per_axis]
    padded = tuple(int(math.ceil(int(p) / k) * k) for p, k in zip(patch_size, divisor, strict=True))
    return UNetPlan(tuple(kernels), tuple(strides), padded)
