"""Residual-encoder U-Net (ResEnc) — nnU-Net's ``ResidualEncoderUNet`` with the M/L presets of Isensee et al. 2024.

Isensee et al. 2024, "nnU-Net Revisited: A Call for Rigorous Validation in 3D Medical Image Segmentation"
(MICCAI 2024, arXiv 2404.09556), section 3 and Table 1: nnU-Net's U-Net with the encoder made of residual
blocks (He et al. 2016, ResNet-D skips of He et al. 2019: average pooling then a 1x1 convolution), 1, 3, 4,
6, 6, ... blocks per stage, one convolution per decoder stage. The novelty is in what they measured: at the
same budget this CNN matches or beats the transformer and MedNeXt networks, and they recommend ResEnc L as
the default baseline.

The presets ``M`` and ``L`` are ``nnUNetPlannerResEncM`` / ``nnUNetPlannerResEncL``
(``nnunetv2/experiment_planning/experiment_planners/residual_unets/residual_encoder_unet_planners.py``):
both build the same network for the same patch and spacing (blocks per stage, widths 32 doubling to 320 in
3D / 512 in 2D, instance norm, leaky ReLU, conv bias); they differ in the GPU memory the planner fills
(8 vs 24 GB), i.e. L plans a larger patch (and so possibly one more stage) for the same dataset. Kernels
and strides come from :func:`ctbench.models.nnunet_plan.plan_unet` for the run's patch and spacing.

Hand-written from the definition in ``dynamic_network_architectures`` (``architectures/unet.py``,
``building_blocks/residual.py``, ``residual_encoders.py``, ``unet_decoder.py``): that package requires timm,
which pulls torchvision, which does not import beside the CPU torch build used here. Parameter counts
equal the package's to the parameter (``tests/models/test_modern_models.py``). Layers come from MONAI's
factories. One segmentation head per decoder stage is always built, as nnU-Net does (deep supervision
uses them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Conv, Pool
from torch import nn

from ctbench.errors import CTBenchError
from ctbench.models.base import SegmentationNet, load_pretrained, norm_layer
from ctbench.models.nnunet_plan import BASE_FEATURES, DEFAULT_PATCH, plan_unet

#: nnU-Net's ResEnc planners: residual blocks per encoder stage, convolutions per decoder stage, and the GPU
#: memory target the planner fits the patch into (documentation: the network at a given patch is the same)
PRESETS = {
    "M": {"blocks_per_stage": (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6), "decoder_convs": 1, "vram_gb": 8},
    "L": {"blocks_per_stage": (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6), "decoder_convs": 1, "vram_gb": 24},
}


def _conv(dims: int, cin: int, cout: int, kernel: Sequence[int] | int, stride: Sequence[int] | int = 1,
          bias: bool = True) -> nn.Module:
    kernel = (kernel,) * dims if isinstance(kernel, int) else tuple(kernel)
    return Conv[Conv.CONV, dims](cin, cout, kernel_size=kernel, stride=stride, bias=bias,
                                 padding=tuple((k - 1) // 2 for k in kernel))


class ConvNormLReLU(nn.Sequential):
    """nnU-Net's ``ConvDropoutNormReLU`` without dropout: conv -> instance norm (affine) -> leaky ReLU (0.01)."""

    def __init__(self, dims: int, cin: int, cout: int, kernel: Sequence[int] | int, stride: Sequence[int] | int = 1,
                 bias: bool = True, act: bool = True) -> None:
        layers = [_conv(dims, cin, cout, kernel, stride, bias), norm_layer("instance", dims, cout)]
        super().__init__(*layers, *([nn.LeakyReLU(0.01, inplace=True)] if act else []))


class BasicBlockD(nn.Module):
    """Residual block ``act(conv-norm-act-conv-norm(x) + skip(x))``; the skip is ResNet-D's: average pooling
    for a stride, then a 1x1 conv + norm for a width change (He et al. 2019, "Bag of tricks")."""

    def __init__(self, dims: int, cin: int, cout: int, kernel: Sequence[int], stride: Sequence[int]) -> None:
        super().__init__()
        self.conv1 = ConvNormLReLU(dims, cin, cout, kernel, stride)
        self.conv2 = ConvNormLReLU(dims, cout, cout, kernel, 1, act=False)
        skip: list[nn.Module] = []
        if any(s != 1 for s in stride):
            skip.append(Pool[Pool.AVG, dims](kernel_size=tuple(stride), stride=tuple(stride)))
        if cin != cout:
            skip.append(ConvNormLReLU(dims, cin, cout, 1, 1, bias=False, act=False))
        self.skip = nn.Sequential(*skip)
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.skip(x))


class ResEncUNet(SegmentationNet):
    """nnU-Net's residual-encoder U-Net, planned for ``patch_size`` at ``spacing``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        patch_size: training patch (voxels) the topology is planned for; ``None``: 128³ (3D) / 256² (2D).
        spacing: voxel spacing in mm (``None``: isotropic); 2D takes the first two axes.
        preset: ``M`` or ``L`` (nnU-Net's ResEnc planners).
        base_features: width of the first stage (nnU-Net: 32), doubled per stage.
        max_features: width cap (``None``: nnU-Net's 320 in 3D, 512 in 2D).
        blocks_per_stage: residual blocks per encoder stage (``None``: the preset's).
        deep_supervision: in training also return every decoder stage's logits (full resolution first).
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "resenc_unet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 patch_size: Sequence[int] | None = None, spacing: Sequence[float] | None = None, preset: str = "M",
                 base_features: int = BASE_FEATURES, max_features: int | None = None,
                 blocks_per_stage: Sequence[int] | None = None, deep_supervision: bool = False,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        if preset not in PRESETS:
            raise CTBenchError(f"model 'resenc_unet' has no preset '{preset}': use one of {', '.join(PRESETS)}",
                               exit_code=2)
        dims = spatial_dims
        plan = plan_unet(patch_size or DEFAULT_PATCH[dims], spacing)
        widths = plan.features(base_features, max_features)
        blocks = tuple(blocks_per_stage or PRESETS[preset]["blocks_per_stage"])
        if len(blocks) < plan.n_stages:
            raise CTBenchError(f"model 'resenc_unet': blocks_per_stage has {len(blocks)} entries for "
                               f"{plan.n_stages} stages: give one per stage", exit_code=2)
        decoder_convs = int(PRESETS[preset]["decoder_convs"])
        self.plan, self.widths = plan, widths
        self.stem = ConvNormLReLU(dims, in_channels, widths[0], plan.kernel_sizes[0])
        stages, cin = [], widths[0]
        for s, (kernel, stride, cout) in enumerate(zip(plan.kernel_sizes, plan.strides, widths, strict=True)):
            stages.append(nn.Sequential(*(BasicBlockD(dims, cin if b == 0 else cout, cout, kernel,
                                                      stride if b == 0 else (1,) * dims)
                                          for b in range(blocks[s]))))
            cin = cout
        self.stages = nn.ModuleList(stages)
        # registered in nnU-Net's order (decoder stages, transposed convs, heads): state_dicts line up one to one
        self.decoder, self.transpconvs, self.seg_layers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for s in range(1, plan.n_stages):
            below, skip, stride = widths[-s], widths[-(s + 1)], plan.strides[-s]
            self.transpconvs.append(Conv[Conv.CONVTRANS, dims](below, skip, kernel_size=stride, stride=stride))
            kernel = plan.kernel_sizes[-(s + 1)]
            self.decoder.append(nn.Sequential(*(ConvNormLReLU(dims, 2 * skip if c == 0 else skip, skip, kernel)
                                                for c in range(decoder_convs))))
            self.seg_layers.append(_conv(dims, skip, out_channels, 1))
        self.deep_supervision = deep_supervision
        self.size_divisor = max(plan.divisor)
        self.min_size = self.size_divisor
        self.apply(_he_init)
        for module in self.modules():  # nnU-Net's init_last_bn_before_add_to_0: each block starts as its skip
            if isinstance(module, BasicBlockD):
                nn.init.zeros_(module.conv2[1].weight)
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        skips, x = [], self.stem(x)
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        outputs = []
        for s, (up, block, head) in enumerate(zip(self.transpconvs, self.decoder, self.seg_layers, strict=True)):
            x = block(torch.cat((up(x), skips[-(s + 2)]), 1))
            if self.deep_supervision and self.training or s == len(self.decoder) - 1:
                outputs.append(head(x))
        return outputs[::-1] if self.deep_supervision and self.training else outputs[-1]


def _he_init(module: nn.Module) -> None:
    """nnU-Net's ``InitWeights_He(1e-2)``: Kaiming-normal convolution weights (leaky slope 0.01), zero biases."""
    if isinstance(module, nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d | nn.ConvTranspose3d):
        nn.init.kaiming_normal_(module.weight, a=1e-2)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
