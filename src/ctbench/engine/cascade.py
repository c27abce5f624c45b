"""Two-stage training for the cascaded FCN (Christ et al. 2016).

Used instead of :class:`~ctbench.engine.module.SegmentationModule` when the model names it
(``lightning_module`` in ``configs/model/cascaded_fcn.yaml``). Each training step trains both stages as the paper does:

- stage 1 (organ): ``loss(stage1(x), y')`` on the whole patch, where ``y'`` counts the lesion as organ;
- stage 2 (lesion): for each patch holding the organ, the ground-truth organ's bounding box (plus a
  margin, grown to the network's size multiple) is cropped from the image and stage 2 learns
  ``lesion vs not`` inside it: ``loss(stage2(crop), [y == lesion])``.

The loss is their sum (both from the ``loss`` group). Validation, test and prediction are the
parent's: the model's ``forward`` chains the stages (organ prediction -> crop -> lesion) and returns
C-class log-probabilities, so the report scores the organ and the lesion like any other model.
"""

from __future__ import annotations

import torch

from ctbench.engine.module import SegmentationModule


def _plain(x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x).as_subclass(torch.Tensor)


class CascadeSegmentationModule(SegmentationModule):
    """SegmentationModule whose training step trains the organ stage and the lesion-in-crop stage."""

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        image, label = _plain(batch["image"]), _plain(batch["label"]).long()
        model = self.model
        organ_loss = self.loss_fn(model.stage1(image), model.merge_lesion(label))
        lesion_losses = []
        region = (label[:, 0] == model.organ_class) | (label[:, 0] == model.lesion_class)
        for i in range(image.shape[0]):
            box = model.crop_box(region[i])
            if box is None:
                continue
            crop = image[(i, slice(None), *box)].unsqueeze(0)
            target = (label[(i, slice(None), *box)] == model.lesion_class).long().unsqueeze(0)
            lesion_losses.append(self.loss_fn(model.stage2(crop), target))
        lesion_loss = torch.stack(lesion_losses).mean() if lesion_losses else organ_loss.new_zeros(())
        loss = organ_loss + lesion_loss
        if not torch.isfinite(loss):
            return self._non_finite(f"the loss became {loss.item()}")
        n = image.shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/loss_organ", organ_loss.detach(), on_step=True, on_epoch=True, batch_size=n)
        self.log("train/loss_lesion", lesion_loss.detach(), on_step=True, on_epoch=True, batch_size=n)
        return loss
