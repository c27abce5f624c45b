"""nnU-Net's plain U-Net — Isensee et al. 2021 (Nature Methods; arXiv 2018), as MONAI's ``DynUNet``.

Novelty (of nnU-Net): no new layer; the U-Net of Ronneberger et al. 2015 / Çiçek et al. 2016 configured
from the data: kernels and strides planned from the patch size and voxel spacing
(:func:`ctbench.models.nnunet_plan.plan_unet`, nnU-Net's ``get_pool_and_conv_props``), two
conv-instance-norm-leaky-ReLU per stage, strided convolutions down, transposed convolutions up, widths 32
doubling to 320 (3D) / 512 (2D), deep supervision on every decoder level below full resolution.

Reuses MONAI: :class:`monai.networks.nets.DynUNet` (the nnU-Net re-implementation of MONAI's tutorials)
built from that plan; deep supervision uses ctbench's heads on DynUNet's up-sampling blocks, so the
lower levels are scored at their own resolution against resized labels, as nnU-Net does (DynUNet's own
heads upsample every level to full resolution). Differences to nnU-Net's ``PlainConvUNet``: no convolution
biases (they precede instance norm, which removes them) and one segmentation head per supervised level
only; the parameter counts are compared in ``tests/models/test_modern_models.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import DynUNet as MonaiDynUNet

from ctbench.models.base import DeepSupervisedNet
from ctbench.models.nnunet_plan import BASE_FEATURES, DEFAULT_PATCH, plan_unet


class DynUNet(DeepSupervisedNet):
    """nnU-Net's plain U-Net planned for ``patch_size`` at ``spacing`` (MONAI ``DynUNet``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        patch_size: training patch (voxels) the topology is planned for; ``None``: 128³ (3D) / 256² (2D).
        spacing: voxel spacing in mm (``None``: isotropic); 2D takes the first two axes.
        base_features: width of the first stage (nnU-Net: 32), doubled per stage.
        max_features: width cap (``None``: nnU-Net's 320 in 3D, 512 in 2D).
        res_block: residual blocks instead of plain ones (MONAI's option; not nnU-Net's default).
        deep_supervision: in training also return the logits of every decoder level below full resolution.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "dynunet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 patch_size: Sequence[int] | None = None, spacing: Sequence[float] | None = None,
                 base_features: int = BASE_FEATURES, max_features: int | None = None, res_block: bool = False,
                 deep_supervision: bool = False, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        plan = plan_unet(patch_size or DEFAULT_PATCH[spatial_dims], spacing)
        filters = plan.features(base_features, max_features)
        self.plan = plan
        self.net = MonaiDynUNet(spatial_dims, in_channels, out_channels, kernel_size=plan.kernel_sizes,
                                strides=plan.strides, upsample_kernel_size=plan.strides[1:], filters=filters,
                                res_block=res_block)
        self.size_divisor = max(plan.divisor)
        # upsamples[-1] gives full resolution; the ones before it the coarser decoder levels
        levels = [(self.net.upsamples[-i], filters[i - 1]) for i in range(2, len(self.net.upsamples) + 1)]
        self._finish(spatial_dims, levels, out_channels, deep_supervision, pretrained)
