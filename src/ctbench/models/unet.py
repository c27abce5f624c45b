"""U-Net — Ronneberger, Fischer & Brox 2015 (2D); Çiçek et al. 2016 (3D U-Net).

Novelty: a contracting and a symmetric expanding path joined by skip connections that
**concatenate** encoder features to the upsampled decoder features (FCN adds scores instead).

Reuses MONAI: the default is :class:`monai.networks.nets.UNet` (residual units, strided convs; the
keys ``channels``/``strides``/``num_res_units``/``norm``), and ``preset=paper`` builds
:class:`monai.networks.nets.BasicUNet` as the paper's Fig. 1: widths 64-1024, two 3x3 convolutions +
ReLU per level, 2x2 max pooling, 2x2 up-convolutions that halve the channels, **no normalisation**
(the paper predates batch norm in U-Nets; MONAI's default instance norm is switched off). Its
31,030,658 parameters in 2D (1 channel, 2 classes) are the count of the paper's Fig. 1 network,
derived layer by layer in ``tests/models/test_models_params.py``. Two differences remain: padded
("same") convolutions, so the output has the input's size (the paper's are unpadded, 572 -> 388), and
the paper's dropout "at the end of the contracting path" is ``dropout``. This class adds
``size_divisor``, one-line input errors and optional deep supervision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.networks.layers.simplelayers import SkipConnection
from monai.networks.nets import BasicUNet
from monai.networks.nets import UNet as MonaiUNet
from torch import nn

from ctbench.models.base import DeepSupervisedNet, preset_values

PAPER_FEATURES = (64, 128, 256, 512, 1024, 64)
PRESETS = {"paper": {"norm": "none"}}


def monai_unet_levels(net: MonaiUNet, channels: Sequence[int]) -> list[tuple[nn.Module, int]]:
    """MONAI ``UNet``'s decoder up-layers below full resolution (1/2, 1/4, ...) and their widths."""
    levels, block, depth = [], net.model, 0
    while isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], SkipConnection):
        if depth:
            levels.append((block[2], channels[depth - 1]))
        block, depth = block[1].submodule, depth + 1
    return levels


class UNet(DeepSupervisedNet):
    """U-Net with concatenated skips (MONAI ``UNet`` by default, ``BasicUNet`` for ``preset=paper``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        channels: widths per level (MONAI UNet).
        strides: downsampling stride between levels (MONAI UNet); ``size_divisor`` is their product.
        num_res_units: residual units per level (0: plain conv blocks).
        norm: ``instance``, ``batch``, ``none``, ...
        dropout: dropout probability.
        deep_supervision: in training mode also return logits of every decoder level below full
            resolution (a list, full resolution first; :mod:`ctbench.losses.deep_supervision`).
        preset: ``paper`` for Ronneberger's network (widths 64-1024, no normalisation) via MONAI BasicUNet.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "unet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128), strides: Sequence[int] = (2, 2, 2),
                 num_res_units: int = 2, norm: str = "instance", dropout: float = 0.0,
                 deep_supervision: bool = False, preset: str | None = None, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        v = preset_values(self.model_name, preset, PRESETS, {"norm": norm})
        monai_norm = None if v["norm"] == "none" else v["norm"]
        if preset == "paper":
            self.net = BasicUNet(spatial_dims, in_channels, out_channels, features=PAPER_FEATURES,
                                 act="relu", norm=monai_norm, dropout=dropout)
            self.size_divisor = 16
            levels = [(getattr(self.net, f"upcat_{i}"), PAPER_FEATURES[i - 1]) for i in (2, 3, 4)]
        else:
            self.net = MonaiUNet(spatial_dims, in_channels, out_channels, channels=list(channels),
                                 strides=list(strides), num_res_units=num_res_units, norm=monai_norm,
                                 dropout=dropout)
            self.size_divisor = math.prod(strides)
            levels = monai_unet_levels(self.net, channels)
        self._finish(spatial_dims, levels, out_channels, deep_supervision, pretrained)
