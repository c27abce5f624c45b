"""Deep supervision: one loss over a network's outputs at several resolutions, nnU-Net's weighting.

A model built with ``deep_supervision=true`` returns, in training mode, a list of logits, full
resolution first, then coarser decoder levels (``model.train()``; in ``eval()`` it returns the full
resolution tensor alone, so validation, test and prediction do not change). The loss of output ``i``
is taken against the labels resized to its grid (nearest-exact, as nnU-Net's
``DownsampleSegForDSTransform``) and weighted by :func:`nnunet_weights`.

Weights: nnU-Net v2 (Isensee et al. 2021), ``nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py``,
``_build_loss``: ``1 / 2**i`` for output ``i``, the lowest resolution set to 0, normalised to sum 1;
its ``DeepSupervisionWrapper`` (``nnunetv2/training/loss/deep_supervision.py``) sums the weighted
losses. MONAI's ``DeepSupervisionLoss`` does the same sum but interpolates the labels as they come
(``F.interpolate`` has no nearest mode for int64 labels) and passes no weight map, hence this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F


def nnunet_weights(levels: int) -> list[float]:
    """nnU-Net's deep-supervision weights for ``levels`` outputs, full resolution first.

    ``levels=4`` gives ``1, 1/2, 1/4, 0`` normalised: ``8/14, 4/14, 2/14, 0``. A single output keeps
    weight 1 (nnU-Net zeroes the lowest output only when there are several).
    """
    if levels == 1:
        return [1.0]
    raw = [1.0 / 2**i for i in range(levels - 1)] + [0.0]
    return [w / sum(raw) for w in raw]


def resize_labels(labels: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Integer labels ``[B, 1, *spatial]`` resized to ``size`` (nearest-exact), same dtype."""
    if tuple(labels.shape[2:]) == tuple(size):
        return labels
    return F.interpolate(labels.float(), size=tuple(size), mode="nearest-exact").to(labels.dtype)


def deep_supervision_loss(loss: Callable[..., torch.Tensor], outputs: torch.Tensor | Sequence[torch.Tensor],
                          labels: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """``Σ_i w_i loss(outputs[i], labels resized to outputs[i])`` with :func:`nnunet_weights`.

    ``outputs`` a tensor: ``loss(outputs, labels)`` itself. Extra keyword arguments (the
    ``unet_weighted`` loss's ``weight_map``) are resized like the labels.
    """
    if torch.is_tensor(outputs):
        return loss(outputs, labels, **kwargs)
    total = outputs[0].new_zeros((), dtype=torch.float32)
    for weight, logits in zip(nnunet_weights(len(outputs)), outputs, strict=True):
        # a zero weight still backpropagates (zero gradients), so DDP finds every head used
        size = logits.shape[2:]
        extra = {k: resize_labels(v, size) if torch.is_tensor(v) else v for k, v in kwargs.items()}
        total = total + weight * loss(logits, resize_labels(labels, size), **extra)
    return total
