"""A callback for the resume tests (``+callbacks.stop._target_=interrupt_at_epoch.InterruptAtEpoch``): once (a
marker file remembers it), at one epoch, SIGKILL at its first batch (nothing is saved: ``last.ckpt`` is the
previous epoch's end), Ctrl+C in its start hooks (before the epoch's first step) or SIGTERM at batch ``batch``
(``last.ckpt`` is written inside the epoch, after that batch); under DDP, on every rank."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as pl


class InterruptAtEpoch(pl.Callback):
    def __init__(self, epoch: int, marker: str, how: str = "kill", batch: int = 0) -> None:
        self.epoch, self.marker, self.how, self.batch = epoch, Path(marker), how, batch

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
        if self.how == "sigterm" and batch_idx == self.batch and self._once(trainer):
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning raises at this batch's end: SaveOnInterrupt saves
