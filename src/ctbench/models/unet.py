"""U-Net — Ronneberger, Fischer & Brox 2015 (2D); Çiçek et al. 2016 (3D U-Net).

Novelty: a contracting and a symmetric expanding path joined by skip connections that
**concatenate** encoder features to the upsampled decoder features (FCN adds scores instead).

Reuses MONAI: the default is :class:`monai.networks.nets.UNet` (residual units, strided convs; the
keys ``channels``/``strides``/``num_res_units``/``norm``), and ``preset=paper`` builds
:class:`monai.networks.nets.BasicUNet` with the paper's widths 64-1024 (two 3x3 convs per level,
2x2 up-convolutions that halve the channels; about 31M parameters in 2D). This class only adds
``size_divisor`` and one-line input errors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.networks.nets import BasicUNet
from monai.networks.nets import UNet as MonaiUNet

from ctbench.models.base import SegmentationNet, load_pretrained, preset_values

PAPER_FEATURES = (64, 128, 256, 512, 1024, 64)


class UNet(SegmentationNet):
    """U-Net with concatenated skips (MONAI ``UNet`` by default, ``BasicUNet`` for ``preset=paper``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        channels: widths per level (MONAI UNet).
        strides: downsampling stride between levels (MONAI UNet); ``size_divisor`` is their product.
        num_res_units: residual units per level (0: plain conv blocks).
        norm: ``instance``, ``batch``, ...
        dropout: dropout probability.
        preset: ``paper`` for Ronneberger's widths (64, 128, 256, 512, 1024) via MONAI BasicUNet.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "unet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128), strides: Sequence[int] = (2, 2, 2),
                 num_res_units: int = 2, norm: str = "instance", dropout: float = 0.0,
                 preset: str | None = None, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        preset_values(self.model_name, preset, {"paper": {}}, {})  # rejects unknown preset names
        if preset == "paper":
            self.net = BasicUNet(spatial_dims, in_channels, out_channels, features=PAPER_FEATURES,
                                 act="relu", norm=norm, dropout=dropout)
            self.size_divisor = 16
        else:
            self.net = MonaiUNet(spatial_dims, in_channels, out_channels, channels=list(channels),
                                 strides=list(strides), num_res_units=num_res_units, norm=norm,
                                 dropout=dropout)
            self.size_divisor = math.prod(strides)
        self.min_size = self.size_divisor
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
