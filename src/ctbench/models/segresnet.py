"""SegResNet — Myronenko 2018, "3D MRI brain tumor segmentation using autoencoder regularization" (BraTS 2018).

Novelty: a ResNet-style encoder (pre-activation residual blocks with group norm, 1, 2, 2, 4 blocks per
stage, strided-convolution downsampling) and a light decoder (one block per stage, additive skips,
upsampling by 1x1 conv + trilinear interpolation); the paper's variational auto-encoder branch is a
regulariser for small datasets and is left out, as in MONAI's ``SegResNet``.

Reuses MONAI: :class:`monai.networks.nets.SegResNet` with the paper's widths (32 initial filters, group
norm of 8 groups). This class adds ``size_divisor`` (8: three downsamplings) and one-line input errors.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import SegResNet as MonaiSegResNet

from ctbench.models.base import SegmentationNet, load_pretrained


class SegResNet(SegmentationNet):
    """SegResNet without the VAE branch (MONAI ``SegResNet``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        init_filters: width of the first stage, doubled per downsampling (paper: 32).
        blocks_down: residual blocks per encoder stage (paper: 1, 2, 2, 4).
        blocks_up: residual blocks per decoder stage (paper: 1, 1, 1).
        dropout: dropout after the first convolution (paper: 0.2 spatial dropout); 0 disables it.
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "segresnet"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, init_filters: int = 32,
                 blocks_down: Sequence[int] = (1, 2, 2, 4), blocks_up: Sequence[int] = (1, 1, 1),
                 dropout: float = 0.0, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        self.net = MonaiSegResNet(spatial_dims, init_filters, in_channels, out_channels,
                                  dropout_prob=dropout or None, blocks_down=tuple(blocks_down),
                                  blocks_up=tuple(blocks_up))
        self.size_divisor = 2 ** (len(blocks_down) - 1)
        self.min_size = self.size_divisor
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x):
        return self.net(x)
