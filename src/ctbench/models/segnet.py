"""SegNet — Badrinarayanan, Kendall & Cipolla 2015, "SegNet: A Deep Convolutional Encoder-Decoder".

Novelty: the decoder upsamples by **max-unpooling with the encoder's pooling indices** (each value
goes back to the position its max came from), then densifies the sparse maps with trainable
convolutions; no skip features are stored or concatenated, only the indices. The encoder is the 13
convolutions of VGG-16 with batch norm; the decoder mirrors it.

Hand-written (MONAI has no SegNet); the encoder is :class:`ctbench.models.encoders.VGGEncoder` with
``return_indices=True``. ``preset=paper`` is the paper's network (29.5M parameters in 2D).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctbench.models.base import ConvNormAct, SegmentationNet, conv, load_pretrained, max_unpool, preset_values
from ctbench.models.encoders import VGG16_CHANNELS, VGG16_CONVS, VGGEncoder

PRESETS = {"paper": {"channels": VGG16_CHANNELS, "convs": VGG16_CONVS, "norm": "batch"}}


class SegNet(SegmentationNet):
    """VGG encoder with pooling indices, a mirrored decoder of max-unpooling + conv-BN-ReLU.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        channels: encoder stage widths (VGG-16: 64, 128, 256, 512, 512); the decoder mirrors them.
        convs: convolutions per stage (VGG-16: 2, 2, 3, 3, 3).
        norm: ``batch`` (paper), ``instance``, ``group`` or ``none``.
        preset: ``paper`` for VGG-16 widths.
        pretrained: local encoder ``state_dict`` (torchvision VGG-16-BN names), 2D kernels inflated in 3D.
    """

    model_name = "segnet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128, 128), convs: Sequence[int] = (2, 2, 3, 3, 3),
                 norm: str = "batch", preset: str | None = None, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        v = preset_values(self.model_name, preset, PRESETS, dict(channels=channels, convs=convs, norm=norm))
        d, chans, nconv = spatial_dims, list(v["channels"]), list(v["convs"])
        self.encoder = VGGEncoder(d, in_channels, chans, nconv, norm=v["norm"], return_indices=True)
        self.unpool = max_unpool(d, 2)
        decoder = []
        for i in reversed(range(len(chans))):
            c = chans[i]
            c_next = chans[i - 1] if i > 0 else chans[0]
            layers: list[nn.Module] = [ConvNormAct(d, c, c, norm=v["norm"]) for _ in range(nconv[i] - 1)]
            if i > 0:
                layers.append(ConvNormAct(d, c, c_next, norm=v["norm"]))
            decoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(decoder)
        self.classifier = conv(d, chans[0], out_channels, 3)  # the paper's last decoder conv, no BN/ReLU
        self.size_divisor = self.min_size = self.encoder.stride
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encoder(x)
        h = f.stages[-1]
        for block, idx, size in zip(self.decoder, reversed(f.indices), reversed(f.sizes), strict=True):
            h = block(self.unpool(h, idx, output_size=size[2:]))
        return self.classifier(h)
