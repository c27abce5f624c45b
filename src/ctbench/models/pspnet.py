"""PSPNet — Zhao et al. 2016, "Pyramid Scene Parsing Network"; in 3D, Yang et al. 2018's FCN + PPM.

Novelty: the **pyramid pooling module** (PPM): the last feature map is average-pooled to 1x1, 2x2,
3x3 and 6x6 bins (global to sub-region context), each reduced by a 1x1 conv, upsampled and
concatenated with the features, then classified. 2D (Zhao et al.): a dilated ResNet at output
stride 8 under the PPM. 3D (Yang et al. 2018, "Automatic segmentation of kidney and renal tumor in
CT images based on 3D fully convolutional neural network with pyramid pooling module"): a plain 3D
FCN encoder (two 3x3x3 conv-BN-ReLU per stage, max pooling) under the same PPM, with FCN-style
additive fusion of skip scores while upsampling.

Hand-written (MONAI has no PPM). ``backbone=auto`` picks ``resnet`` in 2D and ``fcn`` in 3D;
``preset=resnet50``/``resnet101`` gives the paper's ResNet (with the paper's 512-wide head).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctbench.errors import CTBenchError
from ctbench.models.base import (
    ConvNormAct,
    SegmentationNet,
    adaptive_avg_pool,
    bilinear_kernel_,
    conv,
    conv_transpose,
    dropout_layer,
    load_pretrained,
    max_pool,
    resize_to,
)
from ctbench.models.deeplab import _backbone, _resnet


class PyramidPooling(nn.Module):
    """Average pooling to each bin size, 1x1 conv (``cin / len(bins)`` maps), upsample, concat with input.

    Pooled branches use conv + bias + ReLU without norm (a 1x1 map cannot be normalised at batch 1).
    """

    def __init__(self, dims: int, cin: int, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        red = max(1, cin // len(bins))
        self.stages = nn.ModuleList(
            nn.Sequential(adaptive_avg_pool(dims, b), conv(dims, cin, red, 1), nn.ReLU(inplace=True)) for b in bins
        )
        self.out_channels = cin + red * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x] + [resize_to(s(x), x.shape[2:]) for s in self.stages], 1)


class FCNEncoder(nn.Module):
    """Yang et al.'s 3D FCN encoder: per stage two 3x3x3 conv-norm-ReLU, then 2x max pooling."""

    def __init__(self, dims: int, cin: int, channels: Sequence[int], norm: str) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        for c in channels:
            self.stages.append(nn.Sequential(ConvNormAct(dims, cin, c, norm=norm), ConvNormAct(dims, c, c, norm=norm)))
            cin = c
        self.pool = max_pool(dims, 2)
        self.channels = list(channels)
        self.stride = 2 ** (len(channels) - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else self.pool(x))
            feats.append(x)
        return feats


class PSPNet(SegmentationNet):
    """Backbone + pyramid pooling module (bins 1, 2, 3, 6) + conv head.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        backbone: ``auto`` (ResNet in 2D, Yang et al.'s FCN in 3D), ``resnet`` or ``fcn``.
        bins: pyramid bin sizes (paper: 1, 2, 3, 6).
        block, layers, widths, stem_channels: the dilated ResNet (output stride 8).
        fcn_channels: widths of the FCN encoder's stages (3 poolings for 4 entries).
        head_channels: width of the 3x3 conv after the PPM (512 in the paper).
        dropout: dropout before the classifier (0.1 in the paper).
        norm: ``batch`` | ``instance`` | ``group``.
        preset: ``resnet18`` .. ``resnet101`` for the ResNet backbone.
        pretrained: local encoder ``state_dict`` (torchvision ResNet names), inflated for 3D.
    """

    model_name = "pspnet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, backbone: str = "auto",
                 bins: Sequence[int] = (1, 2, 3, 6), block: str = "basic", layers: Sequence[int] = (1, 1, 1, 1),
                 widths: Sequence[int] = (16, 32, 64, 128), stem_channels: int = 16,
                 fcn_channels: Sequence[int] = (16, 32, 64, 128), head_channels: int = 64,
                 dropout: float = 0.1, norm: str = "batch", preset: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        if backbone == "auto":
            backbone = "resnet" if (spatial_dims == 2 or preset) else "fcn"
        if backbone not in ("resnet", "fcn"):
            raise CTBenchError(f"model 'pspnet': unknown backbone '{backbone}', use auto, resnet or fcn",
                               exit_code=2)
        d = spatial_dims
        self.backbone = backbone
        if backbone == "resnet":
            bb = _backbone(self.model_name, preset, block, layers, widths, stem_channels,
                           {"resnet50": {"head_channels": 512}, "resnet101": {"head_channels": 512}})
            head_channels = bb.get("head_channels", head_channels)
            self.encoder = _resnet(self.model_name, d, in_channels, bb, 8, (1,), norm)
        else:
            self.encoder = FCNEncoder(d, in_channels, fcn_channels, norm)
        self.ppm = PyramidPooling(d, self.encoder.channels[-1], bins)
        self.head = nn.Sequential(ConvNormAct(d, self.ppm.out_channels, head_channels, 3, norm=norm),
                                  dropout_layer(d, dropout), conv(d, head_channels, out_channels, 1))
        if backbone == "fcn":  # Yang et al.: FCN-style score fusion by addition while upsampling
            skips = self.encoder.channels[:-1]
            self.skip_scores = nn.ModuleList(conv(d, c, out_channels, 1) for c in skips)
            self.upscores = nn.ModuleList(
                conv_transpose(d, out_channels, out_channels, 4, 2, padding=1, bias=False) for _ in skips
            )
            for up in self.upscores:
                bilinear_kernel_(up.weight)
        self.size_divisor = self.min_size = self.encoder.stride
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        score = self.head(self.ppm(feats[-1]))
        if self.backbone == "fcn":
            for up, skip_score, f in zip(self.upscores, self.skip_scores[::-1], feats[-2::-1], strict=True):
                score = up(score) + skip_score(f)
        return resize_to(score, x.shape[2:])
