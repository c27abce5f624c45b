"""MedNeXt — Roy et al. 2023 (MICCAI), a ConvNeXt-style U-Net (ConvNeXt: Liu et al. 2022; U-Net: 2015).

Novelty: every block is ConvNeXt's (a large-kernel depthwise convolution, group norm, a 1x1 expansion by
``R``, GELU, a 1x1 compression, residual), also for down- and upsampling (residual inverted bottlenecks
with strided/transposed depthwise convolutions); the variants S, B, M, L set the blocks per stage and
expansion ratios (their Table 1); kernel 3 or 5 (the paper grows 3 -> 5 by "UpKern" initialisation).

Reuses MONAI (1.6 has it): :func:`monai.networks.nets.mednext.create_mednext` builds the paper's
variants (init filters 32, 4 downsamplings). This class adds ``size_divisor`` (16), one-line input errors
and deep supervision through MedNeXt's own per-level heads (full resolution first, lower levels at
their own resolution, as ``ctbench.losses.deep_supervision`` expects).
"""

from __future__ import annotations

import torch
from monai.networks.nets.mednext import create_mednext

from ctbench.errors import CTBenchError
from ctbench.models.base import SegmentationNet, load_pretrained

VARIANTS = ("S", "B", "M", "L")


class MedNeXt(SegmentationNet):
    """MedNeXt (MONAI ``MedNeXt`` via ``create_mednext``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        variant: ``S``, ``B``, ``M`` or ``L`` (Roy et al. 2023, Table 1).
        kernel_size: depthwise kernel, 3 or 5.
        deep_supervision: in training also return the lower decoder levels' logits.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "mednext"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, variant: str = "S",
                 kernel_size: int = 3, deep_supervision: bool = False, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        if variant not in VARIANTS:
            raise CTBenchError(f"model 'mednext' has no variant '{variant}': use one of {', '.join(VARIANTS)}",
                               exit_code=2)
        self.net = create_mednext(variant, spatial_dims=spatial_dims, in_channels=in_channels,
                                  out_channels=out_channels, kernel_size=kernel_size,
                                  deep_supervision=deep_supervision)
        self.deep_supervision = deep_supervision
        self.size_divisor = 16
        self.min_size = 16
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        out = self.net(x)
        return list(out) if isinstance(out, list | tuple) else out
