"""What every ctbench loss shares: the calling convention, input checks and float32 computation.

Calling convention (``docs/losses.md``): ``loss(logits, target)`` with ``logits`` ``[B, C, *spatial]`` raw
scores (``C >= 2``, class 0 is background) and ``target`` ``[B, 1, *spatial]`` integer labels (an
integer-valued float tensor is accepted); the result is a scalar tensor. Losses are computed in
float32 with autocast disabled, so ``bf16-mixed``/``16-mixed`` training does not lose the small
terms of a sum over a volume.

The input checks read every voxel (finite logits, integer labels in range): ~80 ms a step at batch 2
of 96^3 on a 2-core CPU and two host syncs on a GPU. ``SegmentationModule`` turns them off
(``loss.input_checks = False``) once the first training step has passed them; every other caller
keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ctbench.errors import CTBenchError


def check_inputs(
    name: str, logits: torch.Tensor, target: torch.Tensor, class_weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a ``(logits, target)`` pair for loss ``name``; return float32 logits and int64 labels.

    Raises:
        CTBenchError: on shapes that do not match, fewer than two classes, a label outside
            ``[0, C)`` or not an integer, non-finite logits, or class weights of the wrong length.
    """
    if logits.ndim < 3 or logits.shape[1] < 2:
        raise CTBenchError(
            f"loss '{name}': logits must be [B, C, *spatial] with C >= 2 classes (background = 0), "
            f"got shape {tuple(logits.shape)}; give the model out_channels >= 2"
        )
    expected = (logits.shape[0], 1, *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise CTBenchError(
            f"loss '{name}': target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}; "
            f"expected integer labels of shape {expected} ([B, 1, *spatial], not one-hot)"
        )
    num_classes = logits.shape[1]
    if class_weight is not None and class_weight.numel() != num_classes:
        raise CTBenchError(
            f"loss '{name}': {class_weight.numel()} class weights for {num_classes} classes; "
            f"give one weight per class, background (class 0) first"
        )
    logits = logits.float()
    integral = target.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    flags = torch.stack(
        [
            ~torch.isfinite(logits).all(),
            (target < 0).any() | (target >= num_classes).any(),
            torch.tensor(False, device=target.device) if integral else (target != torch.round(target)).any(),
        ]
    ).tolist()
    if flags[0]:
        raise CTBenchError(
            f"loss '{name}': logits contain NaN or inf (shape {tuple(logits.shape)}); lower the learning rate, "
            f"use trainer.precision=32 or bf16-mixed, or set gradient clipping"
        )
    if flags[1] or flags[2]:
        values = torch.unique(target).tolist()
        shown = values[:10] + (["..."] if len(values) > 10 else [])
        raise CTBenchError(
            f"loss '{name}': target labels {shown} are not integers in [0, {num_classes}) for {num_classes} "
            f"classes; set the model's out_channels to the number of labels (background included) or remap the labels"
        )
    return logits, target.long()


def variant_settings(name: str, variant: str, variants: dict[str, dict[str, Any]],
                     given: dict[str, Any]) -> dict[str, Any]:
    """The settings of loss ``name``'s ``variant`` (``paper`` or ``reference_code``), under the explicitly
    given ones (``None`` in ``given`` means "the variant's value").

    Raises:
        CTBenchError: for a variant the loss does not have.
    """
    if variant not in variants:
        raise CTBenchError(f"loss '{name}' has no variant '{variant}': set loss.variant to one of "
                           f"{', '.join(variants)}")
    return {**variants[variant], **{k: v for k, v in given.items() if v is not None}}


def monai_region_args(include_background: bool, batch: bool, smooth_nr: float, smooth_dr: float,
                      **specific: Any) -> dict[str, Any]:
    """Arguments every MONAI-backed region loss here is built with: integer labels made one-hot, softmax
    over the logits, the sums and smoothing as given, plus the loss's ``specific`` ones."""
    return {"include_background": include_background, "to_onehot_y": True, "softmax": True, "batch": batch,
            "smooth_nr": smooth_nr, "smooth_dr": smooth_dr, **specific}


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[B, 1, *spatial]`` int64 labels -> ``[B, C, *spatial]`` float32 one-hot."""
    return F.one_hot(labels[:, 0], num_classes).movedim(-1, 1).float()


def as_weight(weight: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    """Class weights from a config list (or ``None``) as a float32 tensor for a buffer."""
    return None if weight is None else torch.as_tensor(list(weight), dtype=torch.float32).flatten()


class SegmentationLoss(nn.Module):
    """Base of ctbench losses: ``forward`` checks the inputs and calls :meth:`compute` in float32.

    Subclasses set ``loss_name`` (the config name, used in error messages) and implement
    ``compute(logits, labels)``; per-class weights live in a ``weight`` buffer (checked against C).
    Composite losses call their parts' ``compute`` directly so the
    inputs are checked once.
    """

    loss_name: str = "loss"
    #: check shapes, finiteness and label values on every call (see the module docstring)
    input_checks: bool = True

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.input_checks:
            logits, labels = check_inputs(self.loss_name, logits, target, getattr(self, "weight", None))
        else:
            logits, labels = logits.float(), target.long()
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self.compute(logits, labels)

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of float32 ``logits`` ``[B, C, *spatial]`` and int64 ``labels`` ``[B, 1, *spatial]``."""
        raise NotImplementedError
