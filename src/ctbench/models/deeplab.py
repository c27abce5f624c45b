"""DeepLab v1, v2, v3 and v3+ — Chen et al. 2014, 2016, 2017, 2018.

Novelty of each version (survey section 3.2.4):

- **v1** (Chen et al. 2014, "Semantic Image Segmentation with Deep Convolutional Nets and Fully
  Connected CRFs"): VGG-16 with pool4/pool5 at stride 1 and **atrous (dilated) convolution** in conv5
  (rate 2) and fc6 (rate 12, "LargeFOV"), output stride 8, bilinear upsampling; a fully connected
  CRF refines the result (:func:`ctbench.models.crf.dense_crf`, ``postprocess=crf``).
- **v2** (Chen et al. 2016): a dilated ResNet-101 (output stride 8) and **atrous spatial pyramid
  pooling** (ASPP-L): parallel 3x3 atrous classifiers at rates 6, 12, 18, 24, summed.
- **v3** (Chen et al. 2017): ASPP with **batch norm, a 1x1 branch and image-level pooling** (global
  average pooling, 1x1 conv, upsampled), concatenated and fused by a 1x1 conv; output stride 16 with
  multi-grid rates (1, 2, 4) in the last ResNet stage; no CRF.
- **v3+** (Chen et al. 2018): the v3 encoder plus a **decoder**: ASPP features upsampled 4x and
  concatenated with 1x1-reduced low-level (stride-4) features, refined by two 3x3 convs.

Hand-written (MONAI has only a plain ``SimpleASPP`` block without image pooling); encoders are
:class:`ctbench.models.encoders.VGGEncoder` / :class:`ResNetEncoder`. ``preset=vgg16`` (v1) or
``preset=resnet101`` (v2/v3/v3+) are the papers' networks; the defaults are small ResNets with
atrous rates scaled down for CT patches (a 96^3 patch is 12^3 at output stride 8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctbench.models.base import (
    ConvNormAct,
    SegmentationNet,
    adaptive_avg_pool,
    conv,
    dropout_layer,
    load_pretrained,
    preset_values,
    resize_to,
)
from ctbench.models.encoders import RESNET_PRESETS, VGG16_CHANNELS, VGG16_CONVS, ResNetEncoder, VGGEncoder

SMALL_RESNET = {"block": "basic", "layers": (1, 1, 1, 1), "widths": (16, 32, 64, 128), "stem_channels": 16}
_TORCHVISION_VGG_FC = {"classifier.0.": "fc6.", "classifier.3.": "fc7."}


class DeepLabV1(SegmentationNet):
    """DeepLab-LargeFOV: atrous VGG-16, output stride 8, bilinear upsampling (CRF as post-processing).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        channels: VGG stage widths (paper: 64, 128, 256, 512, 512).
        convs: convolutions per VGG stage.
        fc_channels: width of fc6/fc7 (1024 in LargeFOV).
        fc_dilation: atrous rate of the 3x3 fc6 (12 in LargeFOV).
        norm: ``none`` (paper) or ``batch``/``instance``/``group``.
        dropout: dropout after fc6 and fc7.
        preset: ``vgg16`` (paper, 20.5M parameters in 2D).
        pretrained: local VGG-16 ``state_dict`` (torchvision names), inflated for 3D.
    """

    model_name = "deeplabv1"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128, 128), convs: Sequence[int] = (2, 2, 3, 3, 3),
                 fc_channels: int = 256, fc_dilation: int = 4, norm: str = "batch", dropout: float = 0.5,
                 preset: str | None = None, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        v = preset_values(self.model_name, preset, {"vgg16": {
            "channels": VGG16_CHANNELS, "convs": VGG16_CONVS, "fc_channels": 1024, "fc_dilation": 12,
            "norm": "none"}}, dict(channels=channels, convs=convs, fc_channels=fc_channels,
                                   fc_dilation=fc_dilation, norm=norm))
        d = spatial_dims
        self.encoder = VGGEncoder(d, in_channels, v["channels"], v["convs"], norm=v["norm"],
                                  pool_strides=(2, 2, 2, 1, 1), dilations=(1, 1, 1, 1, 2))
        f = v["fc_channels"]
        self.fc6 = conv(d, v["channels"][-1], f, 3, dilation=v["fc_dilation"])
        self.fc7 = conv(d, f, f, 1)
        self.fc8 = conv(d, f, out_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.drop6, self.drop7 = dropout_layer(d, dropout), dropout_layer(d, dropout)
        self.size_divisor = self.min_size = self.encoder.stride
        if pretrained:
            load_pretrained(self, pretrained, self.model_name, aliases=_TORCHVISION_VGG_FC)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x).stages[-1]
        h = self.drop6(self.relu(self.fc6(h)))
        h = self.drop7(self.relu(self.fc7(h)))
        return resize_to(self.fc8(h), x.shape[2:])


class ASPP(nn.Module):
    """DeepLab v3 ASPP: 1x1 branch, atrous 3x3 branches, image pooling; concat, 1x1 fuse.

    The image-pooling branch has no norm layer (one value per channel cannot be batch/instance
    normalised with batch size 1, common in 3D CT).
    """

    def __init__(self, dims: int, cin: int, cout: int, rates: Sequence[int], norm: str = "batch",
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.branches = nn.ModuleList([ConvNormAct(dims, cin, cout, 1, norm=norm)])
        self.branches.extend(ConvNormAct(dims, cin, cout, 3, dilation=r, norm=norm) for r in rates)
        self.image_pool = nn.Sequential(adaptive_avg_pool(dims, 1), conv(dims, cin, cout, 1),
                                        nn.ReLU(inplace=True))
        self.project = nn.Sequential(ConvNormAct(dims, cout * (len(rates) + 2), cout, 1, norm=norm),
                                     dropout_layer(dims, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(resize_to(self.image_pool(x), x.shape[2:]))
        return self.project(torch.cat(outs, 1))


def _resnet(name: str, spatial_dims: int, in_channels: int, backbone: dict, output_stride: int,
            multi_grid: Sequence[int], norm: str) -> ResNetEncoder:
    return ResNetEncoder(spatial_dims, in_channels, backbone["block"], backbone["layers"], backbone["widths"],
                         backbone["stem_channels"], output_stride, multi_grid, norm)


def _backbone(name: str, preset: str | None, block: str, layers: Sequence[int], widths: Sequence[int],
              stem_channels: int, extra_presets: dict | None = None) -> dict:
    presets = {k: dict(v) for k, v in RESNET_PRESETS.items()}
    for k, v in (extra_presets or {}).items():
        presets.setdefault(k, {}).update(v)
    return preset_values(name, preset, presets, dict(block=block, layers=layers, widths=widths,
                                                     stem_channels=stem_channels))


class DeepLabV2(SegmentationNet):
    """Dilated ResNet (output stride 8) + ASPP-L: parallel atrous 3x3 classifiers, summed.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        block, layers, widths, stem_channels: the ResNet (``preset=resnet101`` for the paper's).
        rates: ASPP atrous rates (paper: 6, 12, 18, 24; default scaled for CT patches).
        norm: ``batch`` | ``instance`` | ``group``.
        preset: ``resnet18`` | ``resnet34`` | ``resnet50`` | ``resnet101`` (paper uses 101 with rates
            6-24).
        pretrained: local ResNet ``state_dict`` (torchvision names), inflated for 3D.
    """

    model_name = "deeplabv2"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, block: str = "basic",
                 layers: Sequence[int] = (1, 1, 1, 1), widths: Sequence[int] = (16, 32, 64, 128),
                 stem_channels: int = 16, rates: Sequence[int] = (2, 4, 6, 8), norm: str = "batch",
                 preset: str | None = None, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        bb = _backbone(self.model_name, preset, block, layers, widths, stem_channels,
                       {"resnet101": {"rates": (6, 12, 18, 24)}})
        rates = bb.get("rates", rates)
        self.encoder = _resnet(self.model_name, spatial_dims, in_channels, bb, 8, (1,), norm)
        c = self.encoder.channels[-1]
        self.aspp = nn.ModuleList(conv(spatial_dims, c, out_channels, 3, dilation=r) for r in rates)
        self.size_divisor = self.min_size = self.encoder.stride
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)[-1]
        score = sum(branch(h) for branch in self.aspp)
        return resize_to(score, x.shape[2:])


class DeepLabV3(SegmentationNet):
    """ResNet (output stride 16, multi-grid) + ASPP with a 1x1 branch and image pooling.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        block, layers, widths, stem_channels: the ResNet (``preset=resnet101`` for the paper's).
        output_stride: 16 (paper, training) or 8.
        rates: ASPP atrous rates at output stride 16 (paper: 6, 12, 18).
        multi_grid: dilation multipliers in the last stage (paper: 1, 2, 4).
        aspp_channels: ASPP width (256 in the paper).
        norm: ``batch`` | ``instance`` | ``group``.
        preset: ``resnet18`` .. ``resnet101``.
        pretrained: local ResNet ``state_dict`` (torchvision names), inflated for 3D.
    """

    model_name = "deeplabv3"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, block: str = "basic",
                 layers: Sequence[int] = (1, 1, 1, 1), widths: Sequence[int] = (16, 32, 64, 128),
                 stem_channels: int = 16, output_stride: int = 16, rates: Sequence[int] = (2, 4, 6),
                 multi_grid: Sequence[int] = (1, 2, 4), aspp_channels: int = 64, norm: str = "batch",
                 preset: str | None = None, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        bb = _backbone(self.model_name, preset, block, layers, widths, stem_channels,
                       {"resnet101": {"rates": (6, 12, 18), "aspp_channels": 256}})
        rates, aspp_channels = bb.get("rates", rates), bb.get("aspp_channels", aspp_channels)
        d = spatial_dims
        self.encoder = _resnet(self.model_name, d, in_channels, bb, output_stride, multi_grid, norm)
        self.aspp = ASPP(d, self.encoder.channels[-1], aspp_channels, rates, norm)
        self.classifier = conv(d, aspp_channels, out_channels, 1)
        self.size_divisor = self.min_size = self.encoder.stride
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.aspp(self.encoder(x)[-1])
        return resize_to(self.classifier(h), x.shape[2:])


class DeepLabV3Plus(DeepLabV3):
    """DeepLab v3 encoder + decoder fusing stride-4 low-level features (concat, two 3x3 convs).

    Args (beyond :class:`DeepLabV3`):
        low_level_channels: 1x1 reduction of the low-level features (48 in the paper).
        decoder_channels: width of the decoder's 3x3 convs (256 in the paper).
    """

    model_name = "deeplabv3p"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, block: str = "basic",
                 layers: Sequence[int] = (1, 1, 1, 1), widths: Sequence[int] = (16, 32, 64, 128),
                 stem_channels: int = 16, output_stride: int = 16, rates: Sequence[int] = (2, 4, 6),
                 multi_grid: Sequence[int] = (1, 2, 4), aspp_channels: int = 64, low_level_channels: int = 16,
                 decoder_channels: int = 64, norm: str = "batch", preset: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels, block, layers, widths, stem_channels,
                         output_stride, rates, multi_grid, aspp_channels, norm, preset, None)
        if preset == "resnet101":
            aspp_channels, low_level_channels, decoder_channels = 256, 48, 256
        d = spatial_dims
        self.reduce = ConvNormAct(d, self.encoder.channels[0], low_level_channels, 1, norm=norm)
        self.decoder = nn.Sequential(
            ConvNormAct(d, aspp_channels + low_level_channels, decoder_channels, 3, norm=norm),
            ConvNormAct(d, decoder_channels, decoder_channels, 3, norm=norm),
        )
        self.classifier = conv(d, decoder_channels, out_channels, 1)
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        low = self.reduce(feats[0])
        h = resize_to(self.aspp(feats[-1]), low.shape[2:])
        h = self.decoder(torch.cat([h, low], 1))
        return resize_to(self.classifier(h), x.shape[2:])
