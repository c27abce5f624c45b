"""A callback for the resume tests (``+callbacks.stop._target_=interrupt_at_epoch.InterruptAtEpoch``): once (a
marker file remembers it), at one epoch, SIGKILL at its first batch (nothing is saved: ``last.ckpt`` is the
previous epoch's end) or Ctrl+C in its start hooks (before the epoch's first step); under DDP, on every rank."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as pl


class InterruptAtEpoch(pl.Callback):
    def __init__(self, epoch: int, marker: str, how: str = "kill") -> None:
        self.epoch, self.marker, self.how = epoch, Path(marker), how

    def _once(self, trainer: pl.Trainer) -> bool:
        marker = self.marker if trainer.world_size == 1 else self.marker.with_name(
            f"{self.marker.name}.rank{trainer.global_rank}")  # under DDP every rank stops, each once
        if trainer.current_epoch != self.epoch or marker.exists():
            return False
        marker.touch()
        return True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.how == "ctrl_c" and self._once(trainer):
            raise KeyboardInterrupt

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.how == "kill" and batch_idx == 0 and self._once(trainer):
            os.kill(os.getpid(), signal.SIGKILL)
