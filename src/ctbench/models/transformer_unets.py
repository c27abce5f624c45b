"""Transformer U-Nets: UNETR (Hatamizadeh et al. 2022, WACV) and Swin UNETR (Hatamizadeh et al. 2022, BrainLes).

Novelty: the encoder is a vision transformer, the decoder a U-Net's (Ronneberger et al. 2015). UNETR
cuts the patch into 16-voxel tokens, runs a ViT-B (Dosovitskiy et al. 2020: 12 layers, width 768, 12
heads) and feeds the outputs of layers 3, 6, 9, 12, reshaped and upsampled by transposed convolutions, to
the decoder. Swin UNETR uses a Swin transformer (shifted windows of 7, patch merging, depths 2, 2, 2, 2)
with feature size 48 and skips at five resolutions.

Reuses MONAI: :class:`monai.networks.nets.UNETR` and :class:`monai.networks.nets.SwinUNETR`. The defaults
are CPU sizes (UNETR with a ViT-Tiny-sized encoder: width 192, 3 heads, MLP 768; Swin UNETR with feature
size 12); ``preset=paper`` builds the papers' networks (ViT-B; feature size 48). UNETR's position embedding is learned for one token grid, so it is built for the training
patch and every input must have that size (sliding-window inference feeds exactly that); Swin UNETR needs
multiples of 32 and at least 64 (its 1/32 level is instance-normalised, which needs more than one voxel).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import UNETR as MonaiUNETR
from monai.networks.nets import SwinUNETR as MonaiSwinUNETR

from ctbench.errors import CTBenchError
from ctbench.models.base import SegmentationNet, load_pretrained, preset_values

DEFAULT_PATCH = {2: (224, 224), 3: (96, 96, 96)}
UNETR_PRESETS = {"paper": {"feature_size": 16, "hidden_size": 768, "mlp_dim": 3072, "num_heads": 12}}
SWIN_PRESETS = {"paper": {"feature_size": 48}}


class UNETR(SegmentationNet):
    """UNETR (MONAI ``UNETR``), built for ``patch_size``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        patch_size: the training patch, the only input size (``None``: 96³ / 224², the paper's); multiples of 16.
        feature_size: decoder width (paper: 16).
        hidden_size: transformer width (ViT-B: 768).
        mlp_dim: transformer MLP width (ViT-B: 3072).
        num_heads: attention heads (ViT-B: 12).
        dropout: transformer dropout.
        preset: ``paper`` for the paper's ViT-B encoder.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "unetr"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 patch_size: Sequence[int] | None = None, feature_size: int = 16, hidden_size: int = 192,
                 mlp_dim: int = 768, num_heads: int = 3, dropout: float = 0.0, preset: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        v = preset_values(self.model_name, preset, UNETR_PRESETS, {"feature_size": feature_size,
                          "hidden_size": hidden_size, "mlp_dim": mlp_dim, "num_heads": num_heads})
        self.img_size = tuple(int(p) for p in (patch_size or DEFAULT_PATCH[spatial_dims]))
        if len(self.img_size) != spatial_dims or any(p % 16 for p in self.img_size):
            raise CTBenchError(f"model 'unetr' needs a {spatial_dims}D patch of multiples of 16 (its 16-voxel "
                               f"tokens), got {list(self.img_size)}: set dataset.patch_size_{spatial_dims}d",
                               exit_code=2)
        self.net = MonaiUNETR(in_channels, out_channels, self.img_size, dropout_rate=dropout,
                              spatial_dims=spatial_dims, **v)
        self.size_divisor = 16
        self.min_size = 16
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.img_size:
            raise CTBenchError(f"model 'unetr' was built for inputs of {list(self.img_size)} (its learned position "
                               f"embedding), got {list(x.shape[2:])}: feed patches of that size (sliding-window "
                               "inference does) or rebuild it with model.patch_size")
        return self.net(x)


class SwinUNETR(SegmentationNet):
    """Swin UNETR (MONAI ``SwinUNETR``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        feature_size: embedding width (paper: 48); a multiple of 12.
        depths: Swin blocks per stage (paper: 2, 2, 2, 2).
        num_heads: attention heads per stage (paper: 3, 6, 12, 24).
        window_size: attention window (paper: 7).
        dropout: dropout path rate.
        preset: ``paper`` for the paper's feature size 48.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "swinunetr"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, feature_size: int = 12,
                 depths: Sequence[int] = (2, 2, 2, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7, dropout: float = 0.0, preset: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        feature_size = preset_values(self.model_name, preset, SWIN_PRESETS, {"feature_size": feature_size})["feature_size"]
        if feature_size % 12:
            raise CTBenchError(f"model 'swinunetr': feature_size={feature_size} must be a multiple of 12", exit_code=2)
        self.net = MonaiSwinUNETR(in_channels, out_channels, depths=tuple(depths), num_heads=tuple(num_heads),
                                  window_size=window_size, feature_size=feature_size, dropout_path_rate=dropout,
                                  spatial_dims=spatial_dims)
        self.size_divisor = 32
        self.min_size = 64
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
