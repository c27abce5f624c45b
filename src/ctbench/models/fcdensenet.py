"""FC-DenseNet ("Tiramisu") — Jégou et al. 2016, "The One Hundred Layers Tiramisu".

Novelty: a U-Net-shaped network built from DenseNet **dense blocks** (every layer sees the
concatenation of all earlier ones), with **transition down** (BN-ReLU-1x1 conv-dropout-max pool) and
**transition up** (3x3 stride-2 transposed conv) between them; on the upsampling path a dense block's
input is **not** concatenated to its output (only its new feature maps are upsampled), which keeps
the number of feature maps from exploding, while the skip connections carry the down path's full
stacks.

Hand-written (MONAI has DenseNet classifiers, not FC-DenseNet). Presets ``fcdensenet56`` (growth 12,
4 layers per block; 1.38M parameters in 2D, CamVid's 3 channels and 11 classes: the paper's Table 2
rounds it to 1.5M, its reference code SimJeg/FC-DenseNet builds 1.38M), ``fcdensenet67`` (growth 16,
5 layers; 3.5M) and ``fcdensenet103`` (growth 16, 4-5-7-10-12 / 15 / 12-10-7-5-4; 9.4M).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Conv
from torch import nn

from ctbench.models.base import (
    SegmentationNet,
    conv,
    dropout_layer,
    load_pretrained,
    max_pool,
    norm_layer,
    preset_values,
)

PRESETS = {
    "fcdensenet56": {"first_channels": 48, "growth_rate": 12, "down_layers": (4, 4, 4, 4, 4),
                     "bottleneck_layers": 4, "dropout": 0.2},
    "fcdensenet67": {"first_channels": 48, "growth_rate": 16, "down_layers": (5, 5, 5, 5, 5),
                     "bottleneck_layers": 5, "dropout": 0.2},
    "fcdensenet103": {"first_channels": 48, "growth_rate": 16, "down_layers": (4, 5, 7, 10, 12),
                      "bottleneck_layers": 15, "dropout": 0.2},
}


class DenseLayer(nn.Sequential):
    """BN - ReLU - 3x3 conv (``growth`` maps) - dropout."""

    def __init__(self, dims: int, cin: int, growth: int, norm: str, p: float) -> None:
        super().__init__(norm_layer(norm, dims, cin), nn.ReLU(inplace=True), conv(dims, cin, growth, 3),
                         dropout_layer(dims, p))


class DenseBlock(nn.Module):
    """``n`` dense layers; returns ``[input, new maps]`` (down path) or only the new maps (up path)."""

    def __init__(self, dims: int, cin: int, n: int, growth: int, norm: str, p: float, keep_input: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(dims, cin + i * growth, growth, norm, p) for i in range(n))
        self.keep_input = keep_input
        self.out_channels = cin * keep_input + n * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats if self.keep_input else feats[1:], 1)


class TransitionDown(nn.Sequential):
    """BN - ReLU - 1x1 conv - dropout - 2x2 max pooling."""

    def __init__(self, dims: int, c: int, norm: str, p: float) -> None:
        super().__init__(norm_layer(norm, dims, c), nn.ReLU(inplace=True), conv(dims, c, c, 1),
                         dropout_layer(dims, p), max_pool(dims, 2))


class FCDenseNet(SegmentationNet):
    """Tiramisu: dense blocks, transitions down/up, skips; no block-input concat on the up path.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        first_channels: width of the first 3x3 convolution (48 in the paper).
        growth_rate: feature maps added by each dense layer (k).
        down_layers: dense layers per block on the down path (its length is the number of poolings);
            the up path mirrors it.
        bottleneck_layers: dense layers in the bottleneck block.
        dropout: dropout after each dense layer and transition (0.2 in the paper).
        norm: ``batch`` (paper), ``instance``, ``group``.
        preset: ``fcdensenet56`` | ``fcdensenet67`` | ``fcdensenet103``.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "fcdensenet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, first_channels: int = 16,
                 growth_rate: int = 8, down_layers: Sequence[int] = (2, 3, 4), bottleneck_layers: int = 4,
                 dropout: float = 0.2, norm: str = "batch", preset: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        v = preset_values(self.model_name, preset, PRESETS, dict(
            first_channels=first_channels, growth_rate=growth_rate, down_layers=down_layers,
            bottleneck_layers=bottleneck_layers, dropout=dropout))
        d, k, p, downs = spatial_dims, v["growth_rate"], v["dropout"], list(v["down_layers"])
        self.first_conv = conv(d, in_channels, v["first_channels"], 3)
        c = v["first_channels"]
        self.down_blocks, self.transitions_down = nn.ModuleList(), nn.ModuleList()
        skip_channels = []
        for n in downs:
            block = DenseBlock(d, c, n, k, norm, p, keep_input=True)
            c = block.out_channels
            skip_channels.append(c)
            self.down_blocks.append(block)
            self.transitions_down.append(TransitionDown(d, c, norm, p))
        self.bottleneck = DenseBlock(d, c, v["bottleneck_layers"], k, norm, p, keep_input=False)
        up_in = self.bottleneck.out_channels  # only the new maps are upsampled
        self.transitions_up, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for i, n in enumerate(reversed(downs)):
            self.transitions_up.append(Conv[Conv.CONVTRANS, d](up_in, up_in, kernel_size=3, stride=2, padding=1,
                                                               output_padding=1))
            c = up_in + skip_channels[-1 - i]
            last = i == len(downs) - 1
            block = DenseBlock(d, c, n, k, norm, p, keep_input=last)  # the last block feeds the classifier
            self.up_blocks.append(block)
            up_in = block.out_channels
        self.classifier = conv(d, up_in, out_channels, 1)
        self.size_divisor = self.min_size = 2 ** len(downs)
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first_conv(x)
        skips = []
        for block, down in zip(self.down_blocks, self.transitions_down, strict=True):
            h = block(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for up, block in zip(self.transitions_up, self.up_blocks, strict=True):
            h = block(torch.cat([up(h), skips.pop()], 1))
        return self.classifier(h)
