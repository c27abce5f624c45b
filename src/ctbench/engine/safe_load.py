"""Load a checkpoint with ``torch.load(weights_only=True)``: never executes pickled code.

Apart from the Lightning checkpoint plugin (``checkpoint_io.py``) so that ``ctbench predict`` and
``ctbench eval``'s config reading do not import Lightning.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from ctbench.errors import CTBenchError, describe


def safe_load(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one-line errors for bad or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise CTBenchError(f"checkpoint {path} does not exist: pass ckpt_path=PATH to a .ckpt file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CTBenchError(f"refusing to load {path}: it holds objects other than tensors and plain data "
                           f"(a pickle that could run code: {describe(err)[:160]}); "
                           "only load checkpoints you trust after converting them to a state_dict") from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CTBenchError(f"cannot read checkpoint {path} ({describe(err)[:160]}): "
                           "the file is truncated or not a PyTorch checkpoint") from err
