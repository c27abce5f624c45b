"""V-Net — Milletari, Navab & Ahmadi 2016, "V-Net: Fully Convolutional Neural Networks for Volumetric
Medical Image Segmentation".

Novelty: a volumetric encoder-decoder whose stages are **residual** (each stage learns a residual on
its input), with **strided 2x2x2 convolutions** instead of pooling for downsampling and transposed
convolutions for upsampling, 5x5x5 kernels, PReLU/ELU, and the Dice loss (``loss=dice``).

Reuses MONAI's V-Net blocks (``InputTransition``, ``DownTransition``, ``UpTransition``,
``OutputTransition`` from :mod:`monai.networks.nets.vnet`), assembled with a width (``base_channels``)
and stage depths (``down_convs``, ``up_convs``) from the config.

- ``preset=paper``: the network the authors released with the paper, ``Prototxt/train_noPooling_ResNet_cinque.prototxt``
  of faustomilletari/VNet (the paper's text only says each stage has "one to three" 5^3 convolutions):
  widths 16-256, one 5^3 convolution at full resolution, then 1, 2, 3, 3 in the four strided stages
  and 3, 2, 1, 1 on the way up, PReLU. Its 61,982,682 parameters in 3D (1 channel, 2 classes; summed
  layer by layer from the prototxt) against 61,987,052 here: MONAI's blocks put a batch norm after
  each convolution (the prototxt has none) and drop the convolution biases.
- ``preset=monai``: MONAI's ``VNet`` layout, stages 1, 2, 3, 2 down and 2, 2, 1, 1 up, ELU (45.6M
  parameters in 3D): two 256->256 5^3 convolutions (16.4M parameters) fewer than the prototxt.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets.vnet import DownTransition, InputTransition, OutputTransition, UpTransition
from torch import nn

from ctbench.errors import CTBenchError
from ctbench.models.base import SegmentationNet, load_pretrained, preset_values

PRESETS = {
    "paper": {"base_channels": 16, "down_convs": (1, 2, 3, 3), "up_convs": (3, 2, 1, 1), "act": "prelu"},
    "monai": {"base_channels": 16, "down_convs": (1, 2, 3, 2), "up_convs": (2, 2, 1, 1), "act": "elu"},
}


class VNet(SegmentationNet):
    """Residual-stage V-Net with strided-conv downsampling (MONAI blocks, configurable width/depth).

    Args:
        spatial_dims: 3 (paper) or 2.
        in_channels: image channels; ``base_channels`` must be a multiple of it.
        out_channels: number of classes.
        base_channels: width of the first stage (16 in the paper); each level doubles it.
        down_convs: 5x5 convolutions in each downsampling stage (its length is the depth).
        up_convs: 5x5 convolutions in each upsampling stage, deepest first.
        act: activation (``elu`` as MONAI, or ``prelu`` as the paper).
        dropout: dropout in the two deepest stages (MONAI's VNet uses 0.5).
        preset: ``paper`` (the authors' prototxt) or ``monai`` (MONAI's ``VNet``); module docstring.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "vnet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, base_channels: int = 8,
                 down_convs: Sequence[int] = (1, 2, 3), up_convs: Sequence[int] = (2, 1, 1),
                 act: str = "elu", dropout: float = 0.0, preset: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        v = preset_values(self.model_name, preset, PRESETS,
                          dict(base_channels=base_channels, down_convs=down_convs, up_convs=up_convs, act=act))
        b, downs, ups = v["base_channels"], list(v["down_convs"]), list(v["up_convs"])
        if b % in_channels:
            raise CTBenchError(f"model 'vnet' needs base_channels ({b}) to be a multiple of in_channels "
                               f"({in_channels}): set model.base_channels={in_channels * max(1, b // in_channels)}",
                               exit_code=2)
        if len(ups) != len(downs):
            raise CTBenchError(f"model 'vnet': up_convs {ups} needs one entry per down stage {downs}", exit_code=2)
        d, depth = spatial_dims, len(downs)
        act = v["act"]
        act_arg = (act, {"inplace": True}) if act == "elu" else act
        self.in_tr = InputTransition(d, in_channels, b, act_arg)
        drop_from = depth - 2  # dropout in the two deepest stages, as MONAI's VNet
        self.down = nn.ModuleList(
            DownTransition(d, b * 2**i, n, act_arg, dropout_prob=dropout if (dropout and i >= drop_from) else None,
                           dropout_dim=d)
            for i, n in enumerate(downs)
        )
        up, c = [], b * 2**depth
        for j, i in enumerate(reversed(range(depth))):
            p = dropout if (dropout and j < 2) else None
            up.append(UpTransition(d, c, 2 * b * 2**i, ups[j], act_arg, dropout_prob=(p, p or 0.0), dropout_dim=d))
            c = 2 * b * 2**i
        self.up = nn.ModuleList(up)
        self.out_tr = OutputTransition(d, c, out_channels, act_arg)
        self.size_divisor = self.min_size = 2**depth
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.in_tr(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        h = skips.pop()
        for block in self.up:
            h = block(h, skips.pop())
        return self.out_tr(h)
