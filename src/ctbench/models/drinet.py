"""DRINet — Chen et al. 2018, "DRINet for Medical Image Segmentation" (IEEE TMI).

Novelty: three block types to make a deep, wide encoder-decoder trainable: **dense connection
blocks** on the downsampling path (each conv sees all earlier maps of its block: feature reuse,
short gradient paths), **residual inception blocks** at the bottleneck (parallel 1x1 / 1x1-3x3 /
1x1-3x3-3x3 branches concatenated, fused by 1x1 and added to the input) and **unpooling blocks** on
the upsampling path (parallel transposed-conv branches of different depth, concatenated; the
inception idea applied to upsampling). In this implementation information reaches the decoder
through the bottleneck only (no U-Net style skip concatenation); block widths are config values,
since the paper gives no parameter table to reproduce.

Hand-written (not in MONAI); dimension-agnostic through :mod:`ctbench.models.base`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctbench.models.base import (
    ConvNormAct,
    SegmentationNet,
    conv,
    conv_transpose,
    load_pretrained,
    max_pool,
    norm_layer,
    preset_values,
)
from ctbench.models.fcdensenet import DenseBlock


class ResidualInception(nn.Module):
    """Branches 1x1 | 1x1-3x3 | 1x1-3x3-3x3, concatenated, 1x1 fuse, added to the input, ReLU."""

    def __init__(self, dims: int, c: int, norm: str) -> None:
        super().__init__()
        b = max(1, c // 4)
        self.branches = nn.ModuleList([
            ConvNormAct(dims, c, b, 1, norm=norm),
            nn.Sequential(ConvNormAct(dims, c, b, 1, norm=norm), ConvNormAct(dims, b, b, 3, norm=norm)),
            nn.Sequential(ConvNormAct(dims, c, b, 1, norm=norm), ConvNormAct(dims, b, b, 3, norm=norm),
                          ConvNormAct(dims, b, b, 3, norm=norm)),
        ])
        self.fuse = ConvNormAct(dims, 3 * b, c, 1, norm=norm, act=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.fuse(torch.cat([br(x) for br in self.branches], 1)))


class Unpooling(nn.Module):
    """2x upsampling by parallel branches: deconv | 1x1-deconv | 1x1-3x3-deconv, concatenated."""

    def __init__(self, dims: int, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        b = max(1, cout // 3)
        self.branches = nn.ModuleList([
            conv_transpose(dims, cin, b, 2, 2),
            nn.Sequential(ConvNormAct(dims, cin, b, 1, norm=norm), conv_transpose(dims, b, b, 2, 2)),
            nn.Sequential(ConvNormAct(dims, cin, b, 1, norm=norm), ConvNormAct(dims, b, b, 3, norm=norm),
                          conv_transpose(dims, b, cout - 2 * b, 2, 2)),
        ])
        self.post = nn.Sequential(norm_layer(norm, dims, cout), nn.ReLU(inplace=True))
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(torch.cat([br(x) for br in self.branches], 1))


class DRINet(SegmentationNet):
    """Dense blocks down, residual inception blocks in the middle, unpooling blocks up.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        first_channels: width of the first 3x3 convolution.
        growth_rate: maps added per dense layer.
        dense_layers: dense layers per block on the way down (its length is the number of poolings).
        compression: a 1x1 conv after each dense block keeps this fraction of its maps.
        inception_blocks: residual inception blocks at the bottleneck.
        norm: ``batch`` | ``instance`` | ``group``.
        preset: only ``default`` (the paper's exact widths are not published as a table).
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "drinet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, first_channels: int = 32,
                 growth_rate: int = 16, dense_layers: Sequence[int] = (3, 4, 5), compression: float = 0.5,
                 inception_blocks: int = 2, norm: str = "batch", preset: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        preset_values(self.model_name, preset, {}, {})  # no paper preset: only the default exists
        d = spatial_dims
        self.stem = ConvNormAct(d, in_channels, first_channels, 3, norm=norm)
        c = first_channels
        down: list[nn.Module] = []
        widths = []
        for n in dense_layers:
            block = DenseBlock(d, c, n, growth_rate, norm, 0.0, keep_input=True)
            out = max(growth_rate, int(block.out_channels * compression))
            down.append(nn.Sequential(block, ConvNormAct(d, block.out_channels, out, 1, norm=norm), max_pool(d, 2)))
            widths.append(c)
            c = out
        self.down = nn.Sequential(*down)
        self.middle = nn.Sequential(*[ResidualInception(d, c, norm) for _ in range(inception_blocks)])
        up: list[nn.Module] = []
        for w in reversed(widths):
            block = Unpooling(d, c, max(w, 3), norm)
            up.append(block)
            c = block.out_channels
        self.up = nn.Sequential(*up)
        self.classifier = conv(d, c, out_channels, 1)
        self.size_divisor = self.min_size = 2 ** len(dense_layers)
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.up(self.middle(self.down(self.stem(x)))))
