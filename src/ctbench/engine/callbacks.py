"""Callbacks that keep a run recoverable."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import SIGTERMException


class SaveOnInterrupt(pl.Callback):
    """On SIGTERM (preemption, ``scancel``) or Ctrl+C during ``fit``, write ``checkpoints/last.ckpt``
    (atomically, through the trainer's checkpoint IO) before the process exits, so that
    ``resume=true`` loses at most the current batch instead of the epoch.

    An interrupt before the epoch's first optimiser step leaves the previous epoch's ``last.ckpt`` as it
    is: it holds the same state, and Lightning resumes a checkpoint written between an epoch's start hooks
    and its first step one epoch short (measured: 3 of 4 epochs trained,
    ``tests/test_resilience.py::test_an_interrupted_run_resumes_to_the_same_weights_and_numbers``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.saved_step: int | None = None  # the step of the epoch-end (or resumed) last.ckpt

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.saved_step = trainer.global_step if self.path.is_file() else None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.saved_step = trainer.global_step  # the "last" ModelCheckpoint writes it in this hook

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.global_step == self.saved_step and self.path.is_file():
            return
        if isinstance(exception, SIGTERMException | KeyboardInterrupt) and trainer.training:
            trainer.save_checkpoint(self.path)
