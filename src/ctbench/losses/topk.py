"""TopK loss: cross entropy over the k % hardest voxels (Wu et al. 2016; nnU-Net's ``TopKLoss``).

Wu, Shen & van den Hengel 2016, "Bridging category-level and instance-level semantic image segmentation"
(arXiv 1605.06885), "online bootstrapping" of hard pixels: ``L = -1/|K| Σ_{i∈K} log p̂_{y_i}(i)`` with
``K`` the ``k`` % of voxels with the largest cross entropy. In Ma et al. 2021's loss benchmark ("Loss
odyssey in medical image segmentation", Medical Image Analysis 71:102035) TopK and Dice + TopK are among
the best losses on liver and multi-organ CT. As nnU-Net's ``TopKLoss``
(``nnunetv2/training/loss/robust_ce_loss.py``): ``k = 10`` and the k % are taken over the whole batch.
Hand-written: MONAI has no TopK loss.
"""

from __future__ import annotations

import torch

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss
from ctbench.losses.cross_entropy import voxel_cross_entropy


class TopKLoss(SegmentationLoss):
    """Mean cross entropy of the ``k`` % voxels with the largest cross entropy (at least one voxel).

    Args:
        k: percentage of voxels kept, in (0, 100]; 100 is plain cross entropy.
    """

    loss_name = "topk"

    def __init__(self, k: float = 10.0) -> None:
        super().__init__()
        if not 0.0 < k <= 100.0:
            raise CTBenchError(f"loss 'topk': k={k} must be a percentage in (0, 100] (nnU-Net: 10)")
        self.k = float(k)

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        voxel_loss = voxel_cross_entropy(logits, labels).flatten()
        kept = max(1, int(voxel_loss.numel() * self.k / 100))
        return torch.topk(voxel_loss, kept, sorted=False).values.mean()
