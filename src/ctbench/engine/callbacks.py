"""Callbacks that keep a run recoverable."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import SIGTERMException


class SaveOnInterrupt(pl.Callback):
    """On SIGTERM (preemption, ``scancel``) or Ctrl+C during ``fit``, write ``checkpoints/last.ckpt``
    (atomically, through the trainer's checkpoint IO) before the process exits, so that
    ``resume=true`` loses at most the current batch instead of the epoch."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException | KeyboardInterrupt) and trainer.training:
            trainer.save_checkpoint(self.path)
