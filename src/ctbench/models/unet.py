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
``size_divisor``, one-line input errors, optional deep supervision and ``skip=add``: the same network with
FCN's added skips (Long et al. 2015) instead of concatenated ones, to ablate that one ingredient
(:class:`AddSkipUNet`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.networks.layers.factories import Conv
from monai.networks.layers.simplelayers import SkipConnection
from monai.networks.nets import BasicUNet
from monai.networks.nets import UNet as MonaiUNet
from torch import nn

from ctbench.errors import CTBenchError, printable
from ctbench.models.base import DeepSupervisedNet, preset_values

PAPER_FEATURES = (64, 128, 256, 512, 1024, 64)
PRESETS = {"paper": {"norm": "none"}}
#: how a skip joins the encoder feature to the upsampled decoder feature: U-Net's concatenation or FCN's sum
SKIPS = ("concat", "add")


def monai_unet_levels(net: MonaiUNet, channels: Sequence[int]) -> list[tuple[nn.Module, int]]:
    """MONAI ``UNet``'s decoder up-layers below full resolution (1/2, 1/4, ...) and their widths."""
    levels, block, depth = [], net.model, 0
    while isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], SkipConnection):
        if depth:
            levels.append((block[2], channels[depth - 1]))
        block, depth = block[1].submodule, depth + 1
    return levels


class AddSkipUNet(MonaiUNet):
    """MONAI ``UNet`` whose skips **add** the encoder feature to the upsampled decoder feature (FCN's fusion,
    Long et al. 2015) instead of concatenating them (Ronneberger et al. 2015); every other layer is unchanged.

    Written here because MONAI's ``SkipConnection`` can add (``mode="add"``) but ``UNet`` always concatenates
    and sizes each decoder layer for the concatenated width (``2c``, or ``c + channels[-1]`` above the bottom
    layer) in a closure of its ``__init__``. So the built network is converted level by level: each skip adds
    ``x_encoder + x_decoder`` (width ``c = channels[level]``), each decoder layer is rebuilt by MONAI's own
    ``_get_up_layer`` to take ``c`` channels, and where the deeper feature is wider (the bottom layer outputs
    ``channels[-1]``, usually ``2 channels[-2]``) a 1x1 convolution with bias projects it to ``c``: the fewest
    parameters that make the sum defined. Parameters: the concat network's, less ``(upc - c) * out * k^D``
    per decoder layer, plus the projection's ``channels[-1] * c + c``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        channels, block = list(self.channels), self.model
        for level, width in enumerate(channels[:-1]):
            deeper = block[1].submodule
            if level == len(channels) - 2 and channels[-1] != width:
                deeper = nn.Sequential(deeper, Conv[Conv.CONV, self.dimensions](channels[-1], width, kernel_size=1))
            block[1] = SkipConnection(deeper, mode="add")
            out = self.out_channels if level == 0 else channels[level - 1]
            block[2] = self._get_up_layer(width, out, self.strides[level], level == 0)
            block = deeper


class UNet(DeepSupervisedNet):
    """U-Net with concatenated skips (MONAI ``UNet`` by default, ``BasicUNet`` for ``preset=paper``), or added
    ones (``skip=add``).

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
        skip: ``concat`` (U-Net's, the default: MONAI's network and weight names as before) or ``add`` (FCN's
            sum, :class:`AddSkipUNet`; not with ``preset=paper``).
    """

    model_name = "unet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128), strides: Sequence[int] = (2, 2, 2),
                 num_res_units: int = 2, norm: str = "instance", dropout: float = 0.0,
                 deep_supervision: bool = False, preset: str | None = None, pretrained: str | None = None,
                 skip: str = "concat") -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        if skip not in SKIPS:
            raise CTBenchError(f"model 'unet' has no skip '{printable(skip)}': use model.skip=concat (U-Net's "
                               "concatenation) or model.skip=add (FCN's sum)", exit_code=2)
        if skip == "add" and preset == "paper":
            raise CTBenchError("model 'unet': skip=add is built on MONAI UNet, not on preset=paper's BasicUNet: "
                               "drop model.preset or use model.skip=concat", exit_code=2)
        v = preset_values(self.model_name, preset, PRESETS, {"norm": norm})
        monai_norm = None if v["norm"] == "none" else v["norm"]
        if preset == "paper":
            self.net = BasicUNet(spatial_dims, in_channels, out_channels, features=PAPER_FEATURES,
                                 act="relu", norm=monai_norm, dropout=dropout)
            self.size_divisor = 16
            levels = [(getattr(self.net, f"upcat_{i}"), PAPER_FEATURES[i - 1]) for i in (2, 3, 4)]
        else:
            network = AddSkipUNet if skip == "add" else MonaiUNet
            self.net = network(spatial_dims, in_channels, out_channels, channels=list(channels),
                               strides=list(strides), num_res_units=num_res_units, norm=monai_norm, dropout=dropout)
            self.size_divisor = math.prod(strides)
            levels = monai_unet_levels(self.net, channels)
        self._finish(spatial_dims, levels, out_channels, deep_supervision, pretrained)
