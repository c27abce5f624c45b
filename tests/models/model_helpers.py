"""Model-test helpers: build any ``configs/model/NAME.yaml`` as the train command would."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from ctbench.engine.components import build_model

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "configs" / "model"
MODEL_NAMES = sorted(p.stem for p in MODEL_DIR.glob("*.yaml"))


def build(name: str, dims: int, in_channels: int = 1, num_classes: int = 3, **overrides) -> torch.nn.Module:
    """Instantiate ``configs/model/{name}.yaml`` with ``dims`` and the dataset keys resolved."""
    model_cfg = OmegaConf.load(MODEL_DIR / f"{name}.yaml")
    for key, value in overrides.items():
        model_cfg[key] = value
    dataset = {"in_channels": in_channels, "num_classes": num_classes, "patch_size_2d": [32, 32],
               "patch_size_3d": [32, 32, 32]}  # the tests' input size: UNETR and the planned U-Nets are built for it
    cfg = OmegaConf.create({"dims": dims, "dataset": dataset, "model": model_cfg})
    return build_model(cfg)


def patch_side(model: torch.nn.Module, at_least: int = 32) -> int:
    """The smallest multiple of the model's ``size_divisor`` that is >= ``at_least`` and its ``min_size``."""
    k = int(model.size_divisor)
    side = max(at_least, int(getattr(model, "min_size", 1)))
    return -(-side // k) * k
