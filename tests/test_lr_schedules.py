"""Learning-rate schedules (engine/lr_schedules.py) over steps and over a ``trainer.max_time`` budget."""

from __future__ import annotations

import io
import math

import lightning.pytorch as pl
import pytest
import torch
from omegaconf import OmegaConf

from ctbench.engine.lr_schedules import WarmupCosineLR
from ctbench.engine.module import build_scheduler, schedule_completed
from ctbench.errors import CTBenchError

LR, FLOOR = 0.1, 0.02


def optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=LR)


def test_cosine_over_a_time_budget_follows_the_clock():
    clock = {"spent": 0.0}
    schedule = WarmupCosineLR(optimizer(), total_steps=10**9, min_factor=FLOOR)
    schedule.time_fraction = lambda: clock["spent"]
    for spent, expected in ((0.0, 1.0), (0.5, 0.5 * (1 + FLOOR)), (1.0, FLOOR), (1.3, FLOOR)):
        clock["spent"] = spent
        schedule.step()
        assert schedule.get_last_lr()[0] == pytest.approx(LR * expected), spent
    assert schedule.progress == 1.0
    state = schedule.state_dict()
    assert "time_fraction" not in state and state["progress"] == 1.0
    buffer = io.BytesIO()
    torch.save(state, buffer)  # a checkpoint stays plain data
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["progress"] == 1.0


class Toy(pl.LightningModule):
    """A linear model on random data whose optimiser and schedule come from ``build_scheduler``."""

    def __init__(self, scheduler: dict) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 1)
        self.cfg = OmegaConf.create({"optim": {"scheduler": scheduler}})
        self.rates: list[float] = []

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
        return torch.utils.data.DataLoader(data, batch_size=4)

    def training_step(self, batch, batch_idx):
        self.rates.append(self.optimizers().param_groups[0]["lr"])
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.net.parameters(), lr=LR)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": build_scheduler(self.cfg, opt, self.trainer),
                                                   "interval": "step"}}

    def on_train_end(self) -> None:
        self.completed = schedule_completed(self.lr_schedulers(), self.trainer)


COSINE = {"_target_": "ctbench.engine.lr_schedules.WarmupCosineLR", "_partial_": True, "warmup_steps": 2,
          "min_factor": FLOOR}


def fit(module: Toy, **trainer_args) -> Toy:
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, **trainer_args)
    trainer.fit(module)
    return module


def test_max_time_run_decays_its_cosine_to_the_end():
    """A run the clock stops (2 s, epochs unbounded) ends with its learning rate at the cosine's floor."""
    module = fit(Toy(COSINE), max_epochs=-1, max_time={"seconds": 2})
    rates = module.rates
    assert len(rates) > 20 and module.completed
    assert max(rates) == pytest.approx(LR, rel=0.05)  # the peak after warm-up
    assert rates[-1] <= LR * (FLOOR + 0.05)  # the last steps at the floor, not at the peak
    after_peak = rates[rates.index(max(rates)):]
    assert all(b <= a + 1e-12 for a, b in zip(after_peak, after_peak[1:], strict=False))


def test_a_step_schedule_completes_and_an_early_stop_does_not():
    done = fit(Toy(COSINE), max_epochs=2)  # 2 x 16 steps, 2 of warm-up: the last step at progress 29/30
    assert done.completed and len(done.rates) == 32
    assert done.rates[-1] == pytest.approx(LR * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * 29 / 30))))

    class StopEarly(pl.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            trainer.should_stop = trainer.global_step >= 10

    stopped = fit(Toy(COSINE), max_epochs=2, callbacks=[StopEarly()])
    assert not stopped.completed


class _TotalStepsCosine(torch.optim.lr_scheduler.CosineAnnealingLR):
    """A torch schedule taking ``total_steps``, without a time budget."""

    def __init__(self, optimizer, total_steps):
        super().__init__(optimizer, T_max=total_steps)


def test_max_time_with_a_schedule_that_has_no_time_budget_is_refused():
    toy = Toy({"_target_": f"{__name__}._TotalStepsCosine", "_partial_": True})
    with pytest.raises(CTBenchError, match="cannot run over a time budget"):
        fit(toy, max_epochs=-1, max_time={"seconds": 1})


def test_a_run_shorter_than_five_warm_ups_shortens_its_warm_up_and_completes(capsys):
    """20 warm-up steps in a 10-step run: warm-up is cut to 2 (a fifth), the factor climbs 1/2, 1, then the
    cosine decays to its floor at step 10 and the schedule reports progress 1."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    schedule = WarmupCosineLR(opt, total_steps=10, warmup_steps=20, min_factor=FLOOR)
    assert schedule.warmup_steps == 2 and "warm-up shortened to 2 steps" in capsys.readouterr().out
    rates = [opt.param_groups[0]["lr"]]
    for _ in range(10):
        opt.step()
        schedule.step()
        rates.append(opt.param_groups[0]["lr"])
    assert rates[:2] == pytest.approx([LR / 2, LR]) and rates[-1] == pytest.approx(LR * FLOOR)
    assert schedule.progress == 1.0
    assert WarmupCosineLR(opt, total_steps=100, warmup_steps=20).warmup_steps == 20  # a fifth: kept
