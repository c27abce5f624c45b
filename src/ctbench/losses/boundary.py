"""Boundary loss of Kervadec et al. 2019 with its scheduled weight α.

Kervadec, Bouchtiba, Desrosiers, Granger, Dolz & Ben Ayed, "Boundary loss for highly unbalanced
segmentation" (MIDL 2019, PMLR 102:285; journal version Medical Image Analysis 67:101851, 2021), eq. (5):

    L_B(θ) = Σ_{q∈Ω} φ_G(q) s_θ(q)

with ``s_θ`` the softmax probability of a foreground class and ``φ_G`` the signed distance to the
boundary of its ground truth ``G``: negative inside, positive outside (the authors' ``one_hot2dist``:
``d_out · (1 - g) - (d_in - 1) · g``, in voxels, so the voxels inside on the boundary are 0), ``0`` for a
class absent from the sample. It is averaged over voxels and foreground classes (their ``SurfaceLoss``
takes the mean), and always paired with a region loss, the generalised Dice loss ``L_GDL``
(:class:`~ctbench.losses.dice.GeneralizedDiceLoss`), under a weight that changes every epoch:

- ``schedule="increase"`` (MIDL 2019, section 3): ``L_GDL + α L_B``, ``α = step · (epoch + 1)`` (0.01, 0.02, ...);
- ``schedule="rebalance"`` (MedIA 2021): ``α L_GDL + (1 - α) L_B``, ``α = max(1 - step · epoch, step)``.

The training module calls :meth:`BoundaryLoss.set_epoch` at the start of every epoch (a resumed run
continues the schedule). Distances come from MONAI's ``distance_transform_edt`` (scipy on CPU, cuCIM on a
GPU when installed); the loss term is hand-written: MONAI has no boundary loss.
"""

from __future__ import annotations

import torch
from monai.transforms.utils import distance_transform_edt

from ctbench.errors import CTBenchError
from ctbench.losses.base import SegmentationLoss, one_hot
from ctbench.losses.dice import GeneralizedDiceLoss

SCHEDULES = ("increase", "rebalance")


def signed_distance(onehot: torch.Tensor) -> torch.Tensor:
    """Kervadec's ``φ_G`` per sample and channel of a one-hot ``[B, C, *spatial]``: the distance (voxels) to the
    object outside it, minus (the distance to the background - 1) inside it; 0 for an empty channel."""
    field = torch.zeros_like(onehot)
    for b in range(onehot.shape[0]):
        for c in range(onehot.shape[1]):
            inside = onehot[b, c : c + 1] > 0.5
            if inside.any():
                outside_dist = distance_transform_edt(~inside)   # 0 inside, distance to G outside
                inside_dist = distance_transform_edt(inside)      # distance to the background, 0 outside
                field[b, c] = (outside_dist - (inside_dist - 1.0) * inside)[0].to(field)
    return field


class BoundaryLoss(SegmentationLoss):
    """Generalised Dice + boundary loss under Kervadec et al.'s epoch schedule (see the module docstring).

    Args:
        schedule: ``increase`` (MIDL 2019: ``L_GDL + α L_B``) or ``rebalance`` (MedIA 2021: ``α L_GDL + (1-α) L_B``).
        step: the change of ``α`` per epoch (the papers: 0.01).
    """

    loss_name = "boundary"

    def __init__(self, schedule: str = "increase", step: float = 0.01) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise CTBenchError(f"loss 'boundary': schedule={schedule!r}; use one of {', '.join(SCHEDULES)}")
        if not 0.0 < step <= 1.0:
            raise CTBenchError(f"loss 'boundary': step={step} must be in (0, 1] (the papers: 0.01)")
        self.schedule, self.step = schedule, float(step)
        self.region = GeneralizedDiceLoss()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the weight of training epoch ``epoch`` (0-based)."""
        self.epoch = int(epoch)

    @property
    def alpha(self) -> float:
        if self.schedule == "increase":
            return self.step * (self.epoch + 1)
        return max(1.0 - self.step * self.epoch, self.step)

    def boundary_term(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``L_B``: mean over voxels and foreground classes of ``φ_G · s_θ``."""
        probs = torch.softmax(logits, 1)[:, 1:]
        phi = signed_distance(one_hot(labels, logits.shape[1])[:, 1:])
        return (phi * probs).mean()

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        region, boundary = self.region.compute(logits, labels), self.boundary_term(logits, labels)
        if self.schedule == "increase":
            return region + self.alpha * boundary
        return self.alpha * region + (1.0 - self.alpha) * boundary
