"""Adversarial training for SegAN (Xue et al. 2018): a segmentor against a multi-scale L1 critic.

Used instead of :class:`~ctbench.engine.module.SegmentationModule` when the model names it
(``lightning_module`` in ``configs/model/segan.yaml``). Each training step, with manual optimisation and two optimisers built
from the ``optim`` group:

1. critic step: maximise ``L_mae = mean_l |f_l(x * S(x)) - f_l(x * y)|`` over the critic's layers
   ``f_l`` (segmentor output detached), then clip the critic's weights to ``[-c, c]`` as SegAN does;
2. segmentor step: minimise ``loss(S(x), y) + adversarial_weight * L_mae``, the segmentation loss
   coming from the ``loss`` group.

Validation, test, prediction and checkpoints are the parent's: the model's ``forward`` is the
segmentor alone, so a SegAN checkpoint predicts like any other model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from ctbench.engine.module import SegmentationModule


def _plain(x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x).as_subclass(torch.Tensor)


class AdversarialSegmentationModule(SegmentationModule):
    """SegmentationModule with SegAN's alternating critic / segmentor updates.

    Args:
        cfg: the composed run config (as for :class:`SegmentationModule`); ``model`` must build a
            network with ``segmentor``, ``critic``, ``multiscale_l1`` and ``adversarial_weight``
            (:class:`ctbench.models.segan.SegAN`).
    """

    critic_clip: float = 0.05  # SegAN clips the critic's weights like a WGAN critic

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.automatic_optimization = False
        self._clip_val: float | None = None

    def configure_callbacks(self):
        # Lightning refuses Trainer(gradient_clip_val=...) with manual optimisation; take the value
        # over here (this hook runs before that check) and clip each optimiser's gradients ourselves.
        trainer = self.trainer
        if trainer.gradient_clip_val:
            self._clip_val = float(trainer.gradient_clip_val)
            trainer.gradient_clip_val = None
        return []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        image, label = _plain(batch["image"]), _plain(batch["label"]).long()
        opt_seg, opt_critic = self.optimizers()
        model = self.model
        onehot = F.one_hot(label[:, 0], self.num_classes).movedim(-1, 1).to(image.dtype)

        # 1. critic: maximise the multi-scale L1 distance (segmentor frozen)
        with torch.no_grad():
            probs = torch.softmax(model(image), 1)
        critic_loss = -model.multiscale_l1(image, probs, onehot)
        opt_critic.zero_grad()
        self.manual_backward(critic_loss)
        self._clip(opt_critic)
        opt_critic.step()
        with torch.no_grad():
            for p in model.critic.parameters():
                p.clamp_(-self.critic_clip, self.critic_clip)

        # 2. segmentor: segmentation loss + adversarial term
        logits = model(image)
        seg_loss = self.loss_fn(logits, label)
        adv_loss = model.multiscale_l1(image, torch.softmax(logits, 1), onehot)
        loss = seg_loss + model.adversarial_weight * adv_loss
        if not torch.isfinite(loss):
            return self._non_finite(f"the loss became {loss.item()}")
        opt_seg.zero_grad()
        self.manual_backward(loss)
        self._clip(opt_seg)
        opt_seg.step()
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if scheduler is not None:
                scheduler.step()

        n = image.shape[0]
        self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/seg_loss", seg_loss.detach(), on_step=True, on_epoch=True, batch_size=n)
        self.log("train/adv_loss", adv_loss.detach(), on_step=True, on_epoch=True, batch_size=n)
        self.log("train/critic_loss", critic_loss.detach(), on_step=True, on_epoch=True, batch_size=n)
        return loss.detach()

    def _clip(self, optimizer) -> None:
        if self._clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self._clip_val, gradient_clip_algorithm="norm")

    def configure_optimizers(self) -> list[dict[str, Any]]:
        """The ``optim`` group's optimiser and schedule, once for the segmentor and once for the critic."""
        config = super().configure_optimizers()  # built over all parameters; narrowed below
        seg_opt, seg_sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
        seg_opt.param_groups[0]["params"] = list(self.model.segmentor.parameters())
        critic_opt = instantiate(self.cfg.optim.optimizer)(params=self.model.critic.parameters())
        critic_sched = torch.optim.lr_scheduler.LambdaLR(critic_opt, seg_sched.lr_lambdas[0])
        return [{"optimizer": seg_opt, "lr_scheduler": {"scheduler": seg_sched, "interval": "step"}},
                {"optimizer": critic_opt, "lr_scheduler": {"scheduler": critic_sched, "interval": "step"}}]
