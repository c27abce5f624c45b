"""Checkpoint files that are never half-written, and loaded without executing pickled code.

Lightning's ``TorchCheckpointIO`` writes in place; a kill during the write leaves a truncated
``last.ckpt`` that a resumed run then fails on. Here every save goes to a temporary file that is
renamed over the target, and every load uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ctbench.atomic import atomic_write
from ctbench.errors import CTBenchError


def safe_load(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one-line errors for bad or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise CTBenchError(f"checkpoint {path} does not exist: pass ckpt_path=PATH to a .ckpt file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CTBenchError(f"refusing to load {path}: it holds objects other than tensors and plain data "
                           f"(a pickle that could run code: {str(err).splitlines()[0][:160]}); "
                           "only load checkpoints you trust after converting them to a state_dict") from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CTBenchError(f"cannot read checkpoint {path} ({str(err).splitlines()[0][:160]}): "
                           "the file is truncated or not a PyTorch checkpoint") from err


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save via temp file + rename; load with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write(path, lambda fh: fh.write(buffer.getbuffer()))

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        return safe_load(path, map_location or "cpu")
