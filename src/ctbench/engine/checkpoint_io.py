"""Checkpoint files that are never half-written, and loaded without executing pickled code.

Lightning's ``TorchCheckpointIO`` writes in place; a kill during the write leaves a truncated
``last.ckpt`` that a resumed run then fails on. Here every save goes to a temporary file that is
renamed over the target, and every load goes through :func:`ctbench.engine.safe_load.safe_load`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ctbench.atomic import atomic_write
from ctbench.engine.safe_load import safe_load


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save via temp file + rename; load with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write(path, lambda fh: fh.write(buffer.getbuffer()))

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        return safe_load(path, map_location or "cpu")
