"""FCN-32s / FCN-16s / FCN-8s — Long, Shelhamer & Darrell 2014, "Fully Convolutional Networks".

Novelty: the classifier's fully connected layers become convolutions (fc6 as a 7x7 conv, fc7 as 1x1)
so the network maps an image of any size to a coarse score map, and coarse scores are fused **by
addition** with scores from shallower pooling layers: FCN-32s upsamples the stride-32 scores
directly, FCN-16s adds pool4's scores, FCN-8s also adds pool3's. The 2x upsamplings are transposed
convolutions initialised to bilinear interpolation and learned; the final upsampling is fixed
(bi/tri)linear, as in the paper.

Hand-written (MONAI has no FCN); the VGG-16 encoder is :class:`ctbench.models.encoders.VGGEncoder`.
``preset=vgg16`` is the paper's network (134M parameters in 2D with 21 classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctbench.models.base import (
    SegmentationNet,
    bilinear_kernel_,
    conv,
    conv_transpose,
    dropout_layer,
    load_pretrained,
    preset_values,
    resize_to,
)
from ctbench.models.encoders import VGG16_CHANNELS, VGG16_CONVS, VGGEncoder

PRESETS = {
    "vgg16": {"channels": VGG16_CHANNELS, "convs": VGG16_CONVS, "fc_channels": 4096, "fc_kernel": 7,
              "norm": "none", "dropout": 0.5},
}


class FCN(SegmentationNet):
    """FCN on a VGG encoder; ``skips`` = 0 (32s), 1 (16s) or 2 (8s) additive skip fusions.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes (background included).
        channels: VGG stage widths (5 stages: total stride 32).
        convs: convolutions per VGG stage.
        fc_channels: width of fc6/fc7 (4096 in the paper).
        fc_kernel: kernel of fc6 as a convolution (7 in the paper).
        norm: ``none`` (paper) or ``batch``/``instance``/``group`` after every encoder conv.
        dropout: dropout after fc6 and fc7.
        preset: ``vgg16`` for the paper's widths, or ``None``/``default``.
        pretrained: path to a local ``state_dict`` (torchvision VGG-16 names: ``features.N.*`` and the
            classifier's ``classifier.0.*``/``classifier.3.*`` become fc6/fc7); 2D kernels are inflated
            for 3D.
    """

    model_name = "fcn"
    skips = 2

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128, 128), convs: Sequence[int] = (2, 2, 3, 3, 3),
                 fc_channels: int = 256, fc_kernel: int = 3, norm: str = "batch", dropout: float = 0.5,
                 preset: str | None = None, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        v = preset_values(self.model_name, preset, PRESETS, dict(
            channels=channels, convs=convs, fc_channels=fc_channels, fc_kernel=fc_kernel, norm=norm,
            dropout=dropout))
        d, c = spatial_dims, out_channels
        self.encoder = VGGEncoder(d, in_channels, v["channels"], v["convs"], norm=v["norm"])
        c5 = v["channels"][-1]
        p = v["dropout"]
        self.fc6 = conv(d, c5, v["fc_channels"], v["fc_kernel"])
        self.fc7 = conv(d, v["fc_channels"], v["fc_channels"], 1)
        self.drop6, self.drop7 = dropout_layer(d, p), dropout_layer(d, p)
        self.relu = nn.ReLU(inplace=True)
        self.score_fr = conv(d, v["fc_channels"], c, 1)
        if self.skips >= 1:
            self.upscore2 = conv_transpose(d, c, c, kernel=4, stride=2, padding=1, bias=False)
            self.score_pool4 = conv(d, v["channels"][-2], c, 1)
            bilinear_kernel_(self.upscore2.weight)
            nn.init.zeros_(self.score_pool4.weight)  # the paper zero-initialises the new score layers
            nn.init.zeros_(self.score_pool4.bias)
        if self.skips >= 2:
            self.upscore_pool4 = conv_transpose(d, c, c, kernel=4, stride=2, padding=1, bias=False)
            self.score_pool3 = conv(d, v["channels"][-3], c, 1)
            bilinear_kernel_(self.upscore_pool4.weight)
            nn.init.zeros_(self.score_pool3.weight)
            nn.init.zeros_(self.score_pool3.bias)
        self.size_divisor = self.encoder.stride
        self.min_size = self.encoder.stride
        if pretrained:
            load_pretrained(self, pretrained, self.model_name, aliases={"classifier.0.": "fc6.", "classifier.3.": "fc7."})

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encoder(x).stages
        h = self.drop6(self.relu(self.fc6(f[-1])))
        h = self.drop7(self.relu(self.fc7(h)))
        score = self.score_fr(h)
        if self.skips >= 1:  # FCN-16s: add pool4's scores to the 2x-upsampled stride-32 scores
            score = self.upscore2(score) + self.score_pool4(f[-2])
        if self.skips >= 2:  # FCN-8s: then add pool3's scores
            score = self.upscore_pool4(score) + self.score_pool3(f[-3])
        return resize_to(score, x.shape[2:])  # fixed bilinear upsampling to the input size


class FCN32s(FCN):
    """FCN-32s (Long et al. 2014): stride-32 scores upsampled in one step, no skip fusion."""

    model_name = "fcn32s"
    skips = 0


class FCN16s(FCN):
    """FCN-16s (Long et al. 2014): stride-32 scores + pool4 scores, fused by addition."""

    model_name = "fcn16s"
    skips = 1


class FCN8s(FCN):
    """FCN-8s (Long et al. 2014): stride-32 + pool4 + pool3 scores, fused by addition."""

    model_name = "fcn8s"
    skips = 2
