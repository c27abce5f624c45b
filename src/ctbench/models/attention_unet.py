"""Attention U-Net — Oktay et al. 2018, "Attention U-Net: Learning Where to Look for the Pancreas".

Novelty: **attention gates** on the skip connections: the coarser decoder signal gates the encoder
features (additive attention, a sigmoid coefficient per voxel) before they are concatenated, so
irrelevant regions are suppressed without an external organ localiser.

Reuses :class:`monai.networks.nets.AttentionUnet`, which is the paper's design; this class adds
``size_divisor`` and one-line input errors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.networks.nets import AttentionUnet as MonaiAttentionUnet

from ctbench.models.base import SegmentationNet, load_pretrained, preset_values


class AttentionUNet(SegmentationNet):
    """U-Net with additive attention gates on every skip (MONAI ``AttentionUnet``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        channels: widths per level (paper 3D: 64, 128, 256, 512 is ``preset=paper``).
        strides: downsampling strides; ``size_divisor`` is their product.
        dropout: dropout probability.
        preset: ``paper`` for the paper's widths.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "attention_unet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128), strides: Sequence[int] = (2, 2, 2),
                 dropout: float = 0.0, preset: str | None = None, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        v = preset_values(self.model_name, preset,
                          {"paper": {"channels": (64, 128, 256, 512), "strides": (2, 2, 2)}},
                          {"channels": channels, "strides": strides})
        self.net = MonaiAttentionUnet(spatial_dims, in_channels, out_channels, channels=list(v["channels"]),
                                      strides=list(v["strides"]), dropout=dropout)
        self.size_divisor = self.min_size = math.prod(v["strides"])
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
