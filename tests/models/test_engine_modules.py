"""SegAN's adversarial LightningModule and the cascaded FCN's two-stage module train on a phantom
batch; the engine picks them from ``lightning_module`` in the model's YAML; checkpoints predict like any model."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from test_models_train import phantom_batch
from torch.utils.data import DataLoader

from ctbench.config import compose
from ctbench.engine.adversarial import AdversarialSegmentationModule
from ctbench.engine.build import module_class
from ctbench.engine.cascade import CascadeSegmentationModule

pytestmark = pytest.mark.filterwarnings("ignore")


def run_cfg(model: str, dims: int = 2):
    return compose("train", [f"model={model}", f"dims={dims}", "optim.scheduler.warmup_steps=0"])


class Batches(torch.utils.data.Dataset):
    def __init__(self, dims: int) -> None:
        self.image, self.label = phantom_batch(dims, side=32, cases=2)

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.image[i], "label": self.label[i][None].float()}


def fit(module: pl.LightningModule, dims: int, steps: int) -> None:
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=steps, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         gradient_clip_val=12.0, num_sanity_val_steps=0)
    trainer.fit(module, DataLoader(Batches(dims), batch_size=2))


def seg_loss(module, dims: int) -> float:
    image, label = phantom_batch(dims, side=32, cases=2)
    module.eval()
    with torch.no_grad():
        return module.loss_fn(module.model(image), label[:, None]).item()


@pytest.mark.slow
def test_segan_trains_adversarially_and_predicts_without_the_critic():
    cfg = run_cfg("segan")
    cls = module_class(cfg)
    assert cls is AdversarialSegmentationModule
    torch.manual_seed(0)
    module = cls(cfg)
    critic_before = [p.detach().clone() for p in module.model.critic.parameters()]
    before = seg_loss(module, 2)
    fit(module, 2, steps=12)  # Trainer(gradient_clip_val=...) is accepted despite manual optimisation
    after = seg_loss(module, 2)
    print(f"segan segmentation loss {before:.3f} -> {after:.3f}")
    assert after < before
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, module.model.critic.parameters(), strict=True))
    assert all(p.abs().max() <= module.critic_clip + 1e-6 for p in module.model.critic.parameters())
    # forward is the segmentor alone: the critic does not run at inference
    called = []
    module.model.critic.register_forward_hook(lambda *a: called.append(1))
    assert module.model(torch.randn(1, 1, 32, 32)).shape == (1, 5, 32, 32) and not called


@pytest.mark.slow
def test_cascade_trains_both_stages_and_chains_them():
    cfg = run_cfg("cascaded_fcn")
    cls = module_class(cfg)
    assert cls is CascadeSegmentationModule
    torch.manual_seed(0)
    module = cls(cfg)
    stage2_before = [p.detach().clone() for p in module.model.stage2.parameters()]
    before = seg_loss(module, 2)
    fit(module, 2, steps=12)
    after = seg_loss(module, 2)
    print(f"cascaded_fcn chained loss {before:.3f} -> {after:.3f}")
    assert after < before
    assert any(not torch.equal(a, b) for a, b in zip(stage2_before, module.model.stage2.parameters(), strict=True))
    probs = module.model(torch.randn(2, 1, 32, 32)).exp()
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 32, 32), atol=1e-4, rtol=1e-4)
