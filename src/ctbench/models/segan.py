"""SegAN — Xue et al. 2018, "SegAN: Adversarial Network with Multi-scale L1 Loss for Medical Image
Segmentation" (the adversarial segmentation the survey cites for CT, e.g. Khosravan et al. 2019).

Novelty: a segmentor and a **critic** trained adversarially: the critic sees the image masked by
the predicted class probabilities and the image masked by the ground truth, and compares their
hierarchical features by a **multi-scale L1 loss**; the segmentor minimises it (plus the usual
segmentation loss), the critic maximises it. At inference only the segmentor runs, so a SegAN
checkpoint predicts like any other model.

Segmentor: ctbench's :class:`~ctbench.models.unet.UNet` (MONAI ``UNet``); critic: hand-written
strided conv-norm-LeakyReLU stack. Trained by :class:`ctbench.engine.adversarial.AdversarialSegmentationModule`
(manual optimisation, two optimisers), named by ``lightning_module`` in ``configs/model/segan.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctbench.models.base import SegmentationNet, conv, load_pretrained, norm_layer
from ctbench.models.unet import UNet


class SegANCritic(nn.Module):
    """Strided 4x4 conv - norm - LeakyReLU layers; returns the input and every layer's features.

    Its input is the image (``in_channels``) multiplied by each class probability map, so it has
    ``in_channels * num_classes`` channels.
    """

    def __init__(self, dims: int, in_channels: int, num_classes: int, channels: Sequence[int] = (16, 32, 64),
                 norm: str = "instance") -> None:
        super().__init__()
        layers, cin = [], in_channels * num_classes
        for i, c in enumerate(channels):
            layers.append(nn.Sequential(conv(dims, cin, c, 4, stride=2, padding=1),
                                        norm_layer(norm, dims, c) if i else nn.Identity(),
                                        nn.LeakyReLU(0.2, inplace=True)))
            cin = c
        self.layers = nn.ModuleList(layers)

    @staticmethod
    def mask(image: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """``[B, I, ...] x [B, C, ...] -> [B, I*C, ...]``: the image masked by each class map."""
        return (image.unsqueeze(2) * probs.unsqueeze(1)).flatten(1, 2)

    def forward(self, masked: torch.Tensor) -> list[torch.Tensor]:
        feats = [masked]
        for layer in self.layers:
            feats.append(layer(feats[-1]))
        return feats


class SegAN(SegmentationNet):
    """U-Net segmentor + multi-scale L1 critic; ``forward`` is the segmentor alone.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes.
        channels, strides, num_res_units, norm: the segmentor U-Net (as ``model=unet``).
        critic_channels: widths of the critic's strided layers.
        adversarial_weight: weight of the multi-scale L1 term in the segmentor's loss (read by the
            training module).
        preset: ``paper`` for the segmentor's paper widths (U-Net preset).
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "segan"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128), strides: Sequence[int] = (2, 2, 2),
                 num_res_units: int = 2, norm: str = "instance", critic_channels: Sequence[int] = (16, 32, 64),
                 adversarial_weight: float = 0.1, preset: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        self.segmentor = UNet(spatial_dims, in_channels, out_channels, channels, strides, num_res_units, norm,
                              preset=preset)
        self.segmentor.model_name = self.model_name
        self.critic = SegANCritic(spatial_dims, in_channels, out_channels, critic_channels)
        self.adversarial_weight = float(adversarial_weight)
        self.size_divisor = self.segmentor.size_divisor
        self.min_size = max(self.segmentor.min_size, 2 ** len(critic_channels))
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentor.net(x)

    def multiscale_l1(self, image: torch.Tensor, probs: torch.Tensor, truth_onehot: torch.Tensor) -> torch.Tensor:
        """SegAN's loss: mean over critic layers of ``|f(image * probs) - f(image * truth)|``."""
        fake = self.critic(SegANCritic.mask(image, probs))
        real = self.critic(SegANCritic.mask(image, truth_onehot))
        return torch.stack([(f - r).abs().mean() for f, r in zip(fake, real, strict=True)]).mean()
