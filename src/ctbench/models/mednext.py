"""MedNeXt — Roy et al. 2023 (MICCAI), a ConvNeXt-style U-Net (ConvNeXt: Liu et al. 2022; U-Net: 2015).

Novelty: every block is ConvNeXt's (a large-kernel depthwise convolution, group norm, a 1x1 expansion by
``R``, GELU, a 1x1 compression, residual), also for down- and upsampling (residual inverted bottlenecks
with strided/transposed depthwise convolutions); the variants S, B, M, L set the blocks per stage and
expansion ratios (their Table 1); kernel 3 or 5 (the paper grows 3 -> 5 by "UpKern" initialisation).

Reuses MONAI (1.6 has it): :class:`monai.networks.nets.MedNeXt` with the variants of the paper's Table 1
as MONAI's ``create_mednext`` sets them (4 downsamplings; ``init_filters`` 32 in the paper, smaller for CPU
grids; the counts equal ``create_mednext``'s at 32, ``tests/models/test_modern_models.py``). This class adds ``size_divisor`` (16), one-line input errors
and deep supervision through MedNeXt's own per-level heads (full resolution first, lower levels at
their own resolution, as ``ctbench.losses.deep_supervision`` expects).
"""

from __future__ import annotations

import torch
from monai.networks.nets import MedNeXt as MonaiMedNeXt

from ctbench.errors import CTBenchError
from ctbench.models.base import SegmentationNet, load_pretrained

#: Roy et al. 2023, Table 1 (as MONAI's ``create_mednext``): expansion ratios and blocks per stage
VARIANTS = {
    "S": {"encoder_expansion_ratio": 2, "decoder_expansion_ratio": 2, "bottleneck_expansion_ratio": 2,
          "blocks_down": (2, 2, 2, 2), "blocks_bottleneck": 2, "blocks_up": (2, 2, 2, 2)},
    "B": {"encoder_expansion_ratio": (2, 3, 4, 4), "decoder_expansion_ratio": (4, 4, 3, 2),
          "bottleneck_expansion_ratio": 4, "blocks_down": (2, 2, 2, 2), "blocks_bottleneck": 2,
          "blocks_up": (2, 2, 2, 2)},
    "M": {"encoder_expansion_ratio": (2, 3, 4, 4), "decoder_expansion_ratio": (4, 4, 3, 2),
          "bottleneck_expansion_ratio": 4, "blocks_down": (3, 4, 4, 4), "blocks_bottleneck": 4,
          "blocks_up": (4, 4, 4, 3)},
    "L": {"encoder_expansion_ratio": (3, 4, 8, 8), "decoder_expansion_ratio": (8, 8, 4, 3),
          "bottleneck_expansion_ratio": 8, "blocks_down": (3, 4, 8, 8), "blocks_bottleneck": 8,
          "blocks_up": (8, 8, 4, 3)},
}


class MedNeXt(SegmentationNet):
    """MedNeXt (MONAI ``MedNeXt`` via ``create_mednext``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        variant: ``S``, ``B``, ``M`` or ``L`` (Roy et al. 2023, Table 1).
        kernel_size: depthwise kernel, 3 or 5.
        init_filters: width of the first stage (paper: 32), doubled per stage.
        deep_supervision: in training also return the lower decoder levels' logits.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "mednext"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, variant: str = "S",
                 kernel_size: int = 3, init_filters: int = 32, deep_supervision: bool = False,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        if variant not in VARIANTS:
            raise CTBenchError(f"model 'mednext' has no variant '{variant}': use one of {', '.join(VARIANTS)}",
                               exit_code=2)
        self.net = MonaiMedNeXt(spatial_dims, init_filters, in_channels, out_channels, kernel_size=kernel_size,
                                deep_supervision=deep_supervision, use_residual_connection=True,
                                norm_type="group", global_resp_norm=False, **VARIANTS[variant])
        self.deep_supervision = deep_supervision
        self.size_divisor = 16
        self.min_size = 16
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        out = self.net(x)
        return list(out) if isinstance(out, list | tuple) else out
