"""SegAN — Xue et al. 2018, "SegAN: Adversarial Network with Multi-scale L1 Loss for Medical Image
Segmentation" (the adversarial segmentation the survey cites for CT, e.g. Khosravan et al. 2019).

Novelty: a segmentor and a **critic** trained adversarially: the critic sees the image masked by
the predicted class probabilities and the image masked by the ground truth, and compares their
hierarchical features by a **multi-scale L1 loss**; the segmentor minimises it (plus the usual
segmentation loss), the critic maximises it. At inference only the segmentor runs, so a SegAN
checkpoint predicts like any other model.

Segmentor: ctbench's :class:`~ctbench.models.unet.UNet` (MONAI ``UNet``; the authors' segmentor is a
2D encoder-decoder with residual and global-convolution blocks, ``NetS`` in ``net.py`` of
YuanXue1993/SegAN); critic: hand-written strided conv-norm-LeakyReLU stack.

Multi-scale L1 (Xue et al. eq. 2): ``1/L Σ_l mean |f_l(x·S(x)) - f_l(x·y)|`` over the critic's
input and layers ``f_l``, equal weights; the default, ``adversarial_weight=0.1`` beside the loss
group's loss, is ctbench's. ``preset=reference_code`` is the authors' training code (``train.py``,
``net.py`` ``NetC``): critic widths 64-128-256-512-512-512 with kernels 7-5-4-4-4-3 and batch norm
from the second layer, the features of the input and the six layers concatenated with weights
1, 1, 2, 2, 2, 2, 4 and *one* mean over the concatenation, at weight 1 beside their Dice loss
(``loss=dice loss.denominator=l2``: their ``dice_loss`` has the squared denominator); critic
weights clipped to ``[-0.05, 0.05]`` in both (:mod:`ctbench.engine.adversarial`). Trained by :class:`ctbench.engine.adversarial.AdversarialSegmentationModule`
(manual optimisation, two optimisers), named by ``lightning_module`` in ``configs/model/segan.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctbench.errors import CTBenchError
from ctbench.models.base import SegmentationNet, conv, load_pretrained, norm_layer, preset_values
from ctbench.models.unet import UNet

#: the authors' training code, YuanXue1993/SegAN ``net.py`` (``NetC``) and ``train.py``
PRESETS = {
    "reference_code": {"critic_channels": (64, 128, 256, 512, 512, 512), "critic_kernels": (7, 5, 4, 4, 4, 3),
                       "critic_norm": "batch", "critic_layer_weights": (1, 1, 2, 2, 2, 2, 4),
                       "adversarial_weight": 1.0},
}


class SegANCritic(nn.Module):
    """Strided conv - norm - LeakyReLU layers (no norm on the first); returns the input and every layer's
    features.

    Its input is the image (``in_channels``) multiplied by each class probability map, so it has
    ``in_channels * num_classes`` channels. A kernel ``k`` has stride 2 and padding ``(k - 1) // 2``
    (the reference code's 7/3, 5/2, 3/1; 4 pads 1), so each layer halves the size.
    """

    def __init__(self, dims: int, in_channels: int, num_classes: int, channels: Sequence[int] = (16, 32, 64),
                 kernels: Sequence[int] | None = None, norm: str = "instance") -> None:
        super().__init__()
        kernels = list(kernels) if kernels is not None else [4] * len(channels)
        if len(kernels) != len(channels):
            raise CTBenchError(f"model 'segan': critic_kernels {kernels} needs one entry per critic layer "
                               f"{list(channels)}", exit_code=2)
        layers, cin = [], in_channels * num_classes
        for i, (c, k) in enumerate(zip(channels, kernels, strict=True)):
            layers.append(nn.Sequential(conv(dims, cin, c, k, stride=2, padding=(k - 1) // 2),
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
        critic_kernels: their kernel sizes (``null``: 4 each).
        critic_norm: the critic's normalisation after its first layer.
        critic_layer_weights: ``null`` for the paper's mean over the input and layers with equal
            weights; or one weight per feature map (the input first), and the features are then
            concatenated and averaged once, as the reference code.
        adversarial_weight: weight of the multi-scale L1 term in the segmentor's loss (read by the
            training module).
        preset: ``reference_code`` (module docstring).
        pretrained: local ``state_dict`` file to start from.
    """

    model_name = "segan"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128), strides: Sequence[int] = (2, 2, 2),
                 num_res_units: int = 2, norm: str = "instance", critic_channels: Sequence[int] = (16, 32, 64),
                 critic_kernels: Sequence[int] | None = None, critic_norm: str = "instance",
                 critic_layer_weights: Sequence[float] | None = None, adversarial_weight: float = 0.1,
                 preset: str | None = None, pretrained: str | None = None) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        v = preset_values(self.model_name, preset, PRESETS, dict(
            critic_channels=critic_channels, critic_kernels=critic_kernels, critic_norm=critic_norm,
            critic_layer_weights=critic_layer_weights, adversarial_weight=adversarial_weight))
        self.segmentor = UNet(spatial_dims, in_channels, out_channels, channels, strides, num_res_units, norm)
        self.segmentor.model_name = self.model_name
        self.critic = SegANCritic(spatial_dims, in_channels, out_channels, v["critic_channels"],
                                  v["critic_kernels"], v["critic_norm"])
        weights = v["critic_layer_weights"]
        if weights is not None and len(weights) != len(v["critic_channels"]) + 1:
            raise CTBenchError(f"model 'segan': critic_layer_weights {list(weights)} needs one weight for the "
                               f"input and one per critic layer ({len(v['critic_channels']) + 1})", exit_code=2)
        self.critic_layer_weights = None if weights is None else [float(w) for w in weights]
        self.adversarial_weight = float(v["adversarial_weight"])
        self.size_divisor = self.segmentor.size_divisor
        self.min_size = max(self.segmentor.min_size, 2 ** len(v["critic_channels"]))
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentor.net(x)

    def multiscale_l1(self, image: torch.Tensor, probs: torch.Tensor, truth_onehot: torch.Tensor) -> torch.Tensor:
        """SegAN's multi-scale L1 between the critic's features of ``image * probs`` and ``image * truth``.

        Equal weights: ``mean_l mean |f_l - f'_l|`` (paper eq. 2). With ``critic_layer_weights``
        ``w_l``: ``Σ_l w_l Σ |f_l - f'_l| / Σ_l n_l`` (``n_l`` elements of layer ``l``), the mean of the
        reference code's weighted concatenation (``train.py``: ``torch.mean(torch.abs(result - target_G))``).
        """
        fake = self.critic(SegANCritic.mask(image, probs))
        real = self.critic(SegANCritic.mask(image, truth_onehot))
        if self.critic_layer_weights is None:
            return torch.stack([(f - r).abs().mean() for f, r in zip(fake, real, strict=True)]).mean()
        total = sum(w * (f - r).abs().sum() for w, f, r in zip(self.critic_layer_weights, fake, real, strict=True))
        return total / sum(f.numel() for f in fake)
