"""VGG and ResNet encoders, dimension-agnostic, with torchvision's parameter names.

Hand-written because torchvision/timm cannot be installed beside the CPU torch build used here and
have no 3D variants. Parameter names follow torchvision (``features.N.weight`` for VGG,
``conv1``/``bn1``/``layerK.i.convJ``/``downsample.0`` for ResNet) so an ImageNet ``state_dict``
converted offline loads with ``model.pretrained=PATH`` (see :func:`ctbench.models.base.load_pretrained`,
which also inflates 2D kernels to 3D).

- :class:`VGGEncoder`: Simonyan & Zisserman 2014 (VGG-16: 13 3x3 convs in 5 stages, max pooling);
  options for the FCN (plain), SegNet (batch norm, pooling indices) and DeepLab v1 (stride-1 pools,
  atrous conv5) variants.
- :class:`ResNetEncoder`: He et al. 2016 (ResNet-18/34/50/101 by ``block``/``layers``), with strides
  replaced by dilation for output stride 8 or 16 (DeepLab v2/v3/v3+, PSPNet) and DeepLab v3's
  multi-grid rates in the last stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ctbench.errors import CTBenchError
from ctbench.models.base import conv, max_pool, norm_layer

VGG16_CHANNELS = (64, 128, 256, 512, 512)
VGG16_CONVS = (2, 2, 3, 3, 3)


@dataclass
class VGGFeatures:
    """Per-stage outputs of :class:`VGGEncoder` (after each pooling), with what SegNet needs."""

    stages: list[torch.Tensor] = field(default_factory=list)
    indices: list[torch.Tensor] = field(default_factory=list)
    sizes: list[torch.Size] = field(default_factory=list)


class VGGEncoder(nn.Module):
    """VGG feature extractor (conv3x3 [+norm] + ReLU blocks, one max pooling per stage).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        channels: width of each stage (VGG-16: 64, 128, 256, 512, 512).
        convs: convolutions per stage (VGG-16: 2, 2, 3, 3, 3).
        norm: ``none`` (VGG-16, FCN, DeepLab v1) or ``batch`` (VGG-16-BN, SegNet) / ``instance`` / ``group``.
        return_indices: keep max-pooling indices and pre-pool sizes (SegNet's decoder).
        pool_strides: stride of each stage's pooling; a stride-1 pooling is 3x3 with padding 1
            (DeepLab v1 keeps resolution after pool4 and pool5).
        dilations: dilation of each stage's convolutions (DeepLab v1: 2 in conv5).
    """

    def __init__(self, spatial_dims: int, in_channels: int, channels: Sequence[int] = VGG16_CHANNELS,
                 convs: Sequence[int] = VGG16_CONVS, norm: str = "none", return_indices: bool = False,
                 pool_strides: Sequence[int] | None = None, dilations: Sequence[int] | None = None) -> None:
        super().__init__()
        if len(channels) != len(convs):
            raise CTBenchError(f"VGG encoder: channels {list(channels)} and convs {list(convs)} must have "
                               "the same length (one entry per stage)", exit_code=2)
        n = len(channels)
        pool_strides = list(pool_strides or [2] * n)
        dilations = list(dilations or [1] * n)
        self.channels = list(channels)
        self.return_indices = return_indices
        layers: list[nn.Module] = []
        self._pool_at: list[int] = []
        cin = in_channels
        for c, k, s, d in zip(channels, convs, pool_strides, dilations, strict=True):
            for _ in range(k):
                layers.append(conv(spatial_dims, cin, c, 3, dilation=d))
                if norm != "none":
                    layers.append(norm_layer(norm, spatial_dims, c))
                layers.append(nn.ReLU(inplace=True))
                cin = c
            self._pool_at.append(len(layers))
            if s == 2:
                layers.append(max_pool(spatial_dims, 2, return_indices=return_indices))
            else:  # DeepLab v1: 3x3 pooling with stride 1 keeps the resolution
                layers.append(max_pool(spatial_dims, 3, stride=1, padding=1))
        self.features = nn.Sequential(*layers)
        self.stride = 1
        for s in pool_strides:
            self.stride *= s

    def forward(self, x: torch.Tensor) -> VGGFeatures:
        out = VGGFeatures()
        pools = set(self._pool_at)
        for i, layer in enumerate(self.features):
            if i in pools:
                out.sizes.append(x.shape)
                y = layer(x)
                if isinstance(y, tuple):
                    x, idx = y
                    out.indices.append(idx)
                else:
                    x = y
                out.stages.append(x)
            else:
                x = layer(x)
        return out


class BasicBlock(nn.Module):
    """ResNet-18/34 block: two 3x3 convs and an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, dims: int, cin: int, width: int, stride: int = 1, dilation: int = 1,
                 norm: str = "batch", downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv(dims, cin, width, 3, stride, dilation, bias=False)
        self.bn1 = norm_layer(norm, dims, width)
        self.conv2 = conv(dims, width, width, 3, 1, dilation, bias=False)
        self.bn2 = norm_layer(norm, dims, width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet-50/101 block: 1x1 reduce, 3x3 (strided/dilated), 1x1 expand (x4), shortcut."""

    expansion = 4

    def __init__(self, dims: int, cin: int, width: int, stride: int = 1, dilation: int = 1,
                 norm: str = "batch", downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv(dims, cin, width, 1, bias=False)
        self.bn1 = norm_layer(norm, dims, width)
        self.conv2 = conv(dims, width, width, 3, stride, dilation, bias=False)
        self.bn2 = norm_layer(norm, dims, width)
        self.conv3 = conv(dims, width, width * 4, 1, bias=False)
        self.bn3 = norm_layer(norm, dims, width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
RESNET_PRESETS = {
    "resnet18": {"block": "basic", "layers": (2, 2, 2, 2), "widths": (64, 128, 256, 512), "stem_channels": 64},
    "resnet34": {"block": "basic", "layers": (3, 4, 6, 3), "widths": (64, 128, 256, 512), "stem_channels": 64},
    "resnet50": {"block": "bottleneck", "layers": (3, 4, 6, 3), "widths": (64, 128, 256, 512),
                 "stem_channels": 64},
    "resnet101": {"block": "bottleneck", "layers": (3, 4, 23, 3), "widths": (64, 128, 256, 512),
                  "stem_channels": 64},
}


class ResNetEncoder(nn.Module):
    """ResNet feature extractor returning the outputs of ``layer1``..``layer4``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        block: ``basic`` (ResNet-18/34) or ``bottleneck`` (ResNet-50/101).
        layers: blocks per stage (ResNet-101: 3, 4, 23, 3).
        widths: stage widths before expansion (64, 128, 256, 512).
        stem_channels: width of the 7x7 stride-2 stem convolution.
        output_stride: 8, 16 or 32; stages past it use dilation instead of stride (DeepLab).
        multi_grid: dilation multipliers for the blocks of ``layer4`` (DeepLab v3: 1, 2, 4).
        norm: ``batch`` | ``instance`` | ``group`` | ``none``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, block: str = "bottleneck",
                 layers: Sequence[int] = (3, 4, 23, 3), widths: Sequence[int] = (64, 128, 256, 512),
                 stem_channels: int = 64, output_stride: int = 8, multi_grid: Sequence[int] = (1,),
                 norm: str = "batch") -> None:
        super().__init__()
        if block not in BLOCKS:
            raise CTBenchError(f"ResNet encoder: unknown block '{block}', use basic or bottleneck", exit_code=2)
        if output_stride not in (8, 16, 32):
            raise CTBenchError(f"ResNet encoder: output_stride must be 8, 16 or 32, got {output_stride}",
                               exit_code=2)
        if len(layers) != 4 or len(widths) != 4:
            raise CTBenchError("ResNet encoder: layers and widths need 4 entries (one per stage)", exit_code=2)
        d = spatial_dims
        blk = BLOCKS[block]
        self.conv1 = conv(d, in_channels, stem_channels, 7, stride=2, bias=False)
        self.bn1 = norm_layer(norm, d, stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = max_pool(d, 3, stride=2, padding=1)
        # strides of layer2..4 and their dilations, so the total stride is output_stride
        strides, dilations = [1, 2, 2, 2], [1, 1, 1, 1]
        current, dilation = 4, 1
        for i in (1, 2, 3):
            if current * 2 > output_stride:
                strides[i], dilation = 1, dilation * 2
            else:
                current *= 2
            dilations[i] = dilation
        self.stride = current
        self.channels: list[int] = []
        cin = stem_channels
        for i, (n, w) in enumerate(zip(layers, widths, strict=True)):
            grid = list(multi_grid) if i == 3 else [1]
            blocks: list[nn.Module] = []
            for j in range(n):
                stride = strides[i] if j == 0 else 1
                down = None
                if j == 0 and (stride != 1 or cin != w * blk.expansion):
                    down = nn.Sequential(conv(d, cin, w * blk.expansion, 1, stride, bias=False),
                                         norm_layer(norm, d, w * blk.expansion))
                rate = dilations[i] * grid[j % len(grid)]
                blocks.append(blk(d, cin, w, stride, rate, norm, down))
                cin = w * blk.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.channels.append(cin)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        return feats
