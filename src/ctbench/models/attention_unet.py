"""Attention U-Net — Oktay et al. 2018, "Attention U-Net: Learning Where to Look for the Pancreas".

Novelty: **attention gates** on the skip connections: a gating signal from the next coarser scale
gates the encoder features (additive attention, a sigmoid coefficient per voxel, Fig. 2) before they
are concatenated, so irrelevant regions are suppressed without an external organ localiser.

Three networks, one class:

- default (``preset=null``): :class:`monai.networks.nets.AttentionUnet`, small widths for a CPU. MONAI's
  gate compares the full-resolution skip with the up-convolved coarse features (no grid resampling).
- ``preset=paper``: the paper's Fig. 1 and 2: four scales (three 2x poolings, ``H4 = H1/8``), two 3^3
  conv-BN-ReLU per scale, one grid attention gate on each of the three skips: the skip is subsampled 2x
  (``W_x``), added to the 1x1-projected gating signal of the next coarser scale, ReLU, 1x1 ``psi``,
  sigmoid, coefficients resampled trilinearly to the skip. The paper gives no widths; ctbench uses
  64-512. Its deep supervision is the training option ``deep_supervision=true``.
- ``preset=reference_code``: the authors' released network, ``unet_CT_multi_att_dsv_3D`` of
  ozan-oktay/Attention-Gated-Networks (``models/networks/unet_CT_multi_att_dsv_3D.py``, its
  ``configs/config_unet_ct_multi_att_dsv.json``: ``feature_scale=4``): widths 64-1024 divided by 4
  (16-256), four poolings, trilinear upsampling, *two* grid gates per skip (``MultiAttentionBlock``,
  combined by a 1x1 conv-BN-ReLU) on the three coarser skips only, the bottom's gating signal a 1x1
  conv-BN-ReLU, and their "deep supervision": a 1x1 class head on each decoder scale, upsampled and
  fused by a 1x1 conv into the output (with ``deep_supervision=true`` those heads' outputs at their own
  resolution are supervised too). 6,472,784 parameters in 3D for 1 channel and 2 classes, the
  count of their code built as released (``tests/models/test_models_params.py``).

Gate (Oktay et al. eq. 1-2; ``models/layers/grid_attention_layer.py``, mode ``concatenation``):
``alpha = sigmoid(psi(relu(theta(x) + phi(g))))`` on the subsampled grid, resampled to ``x``, output
``W(alpha * x)`` (1x1 conv + BN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.networks.nets import AttentionUnet as MonaiAttentionUnet
from monai.networks.nets.attentionunet import AttentionLayer
from torch import nn

from ctbench.models.base import (
    DeepSupervisedNet,
    conv,
    max_pool,
    norm_layer,
    preset_values,
    resize_to,
)

#: widths, gates per gated skip, first gated level (0: full resolution), fused class heads
PRESETS = {
    "paper": {"channels": (64, 128, 256, 512), "gates_per_skip": 1, "first_gated": 0, "fused_heads": False},
    "reference_code": {"channels": (16, 32, 64, 128, 256), "gates_per_skip": 2, "first_gated": 1,
                       "fused_heads": True},
}


def conv_bn_relu(dims: int, cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    """Conv (with bias, as the reference code) + batch norm + ReLU."""
    return nn.Sequential(conv(dims, cin, cout, kernel), norm_layer("batch", dims, cout), nn.ReLU(inplace=True))


class GridAttentionGate(nn.Module):
    """Additive grid attention gate of Oktay et al. (Fig. 2): coefficients on the 2x-subsampled skip."""

    def __init__(self, dims: int, channels: int, gating_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta = conv(dims, channels, inter_channels, kernel=2, stride=2, padding=0, bias=False)
        self.phi = conv(dims, gating_channels, inter_channels, kernel=1)
        self.psi = conv(dims, inter_channels, 1, kernel=1)
        self.out = nn.Sequential(conv(dims, channels, channels, kernel=1), norm_layer("batch", dims, channels))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        theta_x = self.theta(x)
        f = torch.relu(theta_x + resize_to(self.phi(g), theta_x.shape[2:]))
        alpha = resize_to(torch.sigmoid(self.psi(f)), x.shape[2:])
        return self.out(alpha * x)


class GatedSkip(nn.Module):
    """One gate, or several whose outputs a 1x1 conv-BN-ReLU combines (``MultiAttentionBlock``)."""

    def __init__(self, dims: int, channels: int, gating_channels: int, gates: int) -> None:
        super().__init__()
        self.gates = nn.ModuleList(GridAttentionGate(dims, channels, gating_channels, channels) for _ in range(gates))
        self.combine = conv_bn_relu(dims, channels * gates, channels, kernel=1) if gates > 1 else nn.Identity()

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.combine(torch.cat([gate(x, g) for gate in self.gates], 1))


class GridAttentionUNet(nn.Module):
    """Oktay et al.'s Attention U-Net (``preset=paper`` / ``reference_code``), written once for 2D and 3D.

    Args:
        dims: 2 or 3.
        in_channels, out_channels: image channels, classes.
        channels: widths per scale, finest first; ``len(channels) - 1`` 2x max poolings.
        gates_per_skip: grid gates per gated skip.
        first_gated: the finest gated scale (0 gates the full-resolution skip too).
        fused_heads: a 1x1 class head per decoder scale, upsampled and fused into the output.
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, channels: Sequence[int],
                 gates_per_skip: int, first_gated: int, fused_heads: bool) -> None:
        super().__init__()
        c, depth = list(channels), len(channels) - 1
        self.encoder = nn.ModuleList(
            nn.Sequential(conv_bn_relu(dims, cin, cout), conv_bn_relu(dims, cout, cout))
            for cin, cout in zip([in_channels, *c[:-1]], c, strict=True))
        self.pool = max_pool(dims, 2)
        self.gating = conv_bn_relu(dims, c[-1], c[-1], kernel=1)
        self.skips = nn.ModuleList(
            GatedSkip(dims, c[i], c[i + 1], gates_per_skip) if i >= first_gated else nn.Identity()
            for i in range(depth))
        self.decoder = nn.ModuleList(
            nn.Sequential(conv_bn_relu(dims, c[i] + c[i + 1], c[i]), conv_bn_relu(dims, c[i], c[i]))
            for i in range(depth))
        if fused_heads:
            self.heads = nn.ModuleList(conv(dims, c[i], out_channels, 1) for i in range(depth))
            self.final = conv(dims, out_channels * depth, out_channels, 1)
        else:
            self.heads = None
            self.final = conv(dims, c[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        h = skips.pop()
        gate_signal = self.gating(h)
        decoded = []  # coarsest first
        for i in reversed(range(len(skips))):
            skip = self.skips[i](skips[i], gate_signal) if isinstance(self.skips[i], GatedSkip) else skips[i]
            h = self.decoder[i](torch.cat([skip, resize_to(h, skip.shape[2:])], 1))
            gate_signal = h
            decoded.append(h)
        if self.heads is None:
            return self.final(h)
        size = h.shape[2:]
        scores = [resize_to(head(f), size) for head, f in zip(self.heads, reversed(decoded), strict=True)]
        return self.final(torch.cat(scores, 1))


class AttentionUNet(DeepSupervisedNet):
    """Attention U-Net: MONAI ``AttentionUnet`` by default, Oktay et al.'s grid-gated network for presets.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        channels: widths per level (a preset sets its own).
        strides: downsampling strides of the default network; ``size_divisor`` is their product
            (presets: 2 per level).
        dropout: dropout probability (default network).
        deep_supervision: in training mode also return logits of the decoder scales below full
            resolution (a list, full resolution first; :mod:`ctbench.losses.deep_supervision`).
        preset: ``paper`` or ``reference_code`` (see the module docstring).
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "attention_unet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128), strides: Sequence[int] = (2, 2, 2),
                 dropout: float = 0.0, deep_supervision: bool = False, preset: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        v = preset_values(self.model_name, preset, PRESETS, {"channels": channels})
        c = list(v["channels"])
        if preset in PRESETS:
            self.net = GridAttentionUNet(spatial_dims, in_channels, out_channels, c, v["gates_per_skip"],
                                         v["first_gated"], v["fused_heads"])
            self.size_divisor = 2 ** (len(c) - 1)
            # reference_code: its own class heads of the coarser scales (before their upsampling)
            levels = ([(head, None) for head in list(self.net.heads)[1:]] if self.net.heads is not None
                      else list(zip(list(self.net.decoder)[1:], c[1:-1], strict=True)))
        else:
            self.net = MonaiAttentionUnet(spatial_dims, in_channels, out_channels, channels=c,
                                          strides=list(strides), dropout=dropout)
            self.size_divisor = math.prod(strides)
            levels = monai_attention_levels(self.net, c)
        self._finish(spatial_dims, levels, out_channels, deep_supervision, pretrained)


def monai_attention_levels(net: MonaiAttentionUnet, channels: Sequence[int]) -> list[tuple[nn.Module, int]]:
    """MONAI ``AttentionUnet``'s nested attention layers below full resolution and their widths."""
    levels, layer, depth = [], net.model[1], 0
    while isinstance(layer, AttentionLayer):
        if depth:
            levels.append((layer, channels[depth]))
        inner = layer.submodule
        layer, depth = (inner[1] if isinstance(inner, nn.Sequential) else None), depth + 1
    return levels
