"""A ctbench checkpoint read as data: weights, normalisation statistics and the run config, validated.

The stored run config comes from whoever made the file, so it is checked by
:func:`~ctbench.engine.components.check_untrusted` before anything is imported or built, and the
training machine's own paths (``model.pretrained``) are dropped: the weights are in the file, so a
checkpoint predicts anywhere. What belongs to this machine and this command (trainer, folders,
loggers, and the dataset/inference blocks when the command sets them) comes from the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ctbench.config import RunContext
from ctbench.engine.components import build_model, check_untrusted, load_weights
from ctbench.engine.safe_load import safe_load
from ctbench.errors import CTBenchError

#: blocks of this machine and command: always the command's own, never the file's
LOCAL_BLOCKS = ("trainer", "paths", "logger", "callbacks")
#: blocks a command may replace (a new group choice) or change key by key (``dataset.test_cases=3``)
REPLACEABLE_BLOCKS = ("dataset", "inference", "metrics", "report", "postprocess")


def read_checkpoint(path: str | Path) -> tuple[DictConfig, dict[str, Any]]:
    """The validated run config stored in a ctbench checkpoint, and the loaded checkpoint."""
    ckpt = safe_load(path)
    stored = (ckpt.get("hyper_parameters") or {}).get("cfg")
    if not isinstance(stored, dict) or "model" not in stored:
        raise CTBenchError(f"{path} was not written by ctbench (no run config inside): pass a checkpoint from a "
                           "ctbench run")
    # this machine's blocks never come from a file (command_run_config puts the command's in their place)
    stored = {k: v for k, v in stored.items() if k not in LOCAL_BLOCKS}
    check_untrusted(stored, f"checkpoint {path}")
    run_cfg = OmegaConf.create(stored)
    if "pretrained" in run_cfg.model:  # the weights are in this file; the training machine's path is not needed
        run_cfg.model.pretrained = None
    return run_cfg, ckpt


def command_run_config(cfg: DictConfig, ctx: RunContext, path: str | Path) -> tuple[DictConfig, dict[str, Any]]:
    """The run config stored in checkpoint ``path`` with this command's machine blocks and overrides on top."""
    run_cfg, ckpt = read_checkpoint(path)
    given = ctx.given_keys()
    for key in LOCAL_BLOCKS:
        if key in cfg:
            run_cfg[key] = cfg[key]
    for key in REPLACEABLE_BLOCKS:
        if key in given or key not in run_cfg:  # a new group choice replaces the stored block
            run_cfg[key] = cfg.get(key)
    for dotted in given:  # single keys (dataset.test_cases=3) change only themselves
        if "." in dotted and dotted.split(".")[0] in REPLACEABLE_BLOCKS:
            OmegaConf.update(run_cfg, dotted, OmegaConf.select(cfg, dotted), force_add=True)
    run_cfg.progress_bar = cfg.get("progress_bar", True)
    return run_cfg, ckpt


def network_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The network's tensors of a ctbench checkpoint (``model.*`` of the LightningModule's state)."""
    return {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}


def model_from_checkpoint(path: str | Path) -> tuple[torch.nn.Module, DictConfig, dict[str, Any]]:
    """The trained network of checkpoint ``path`` in eval mode, its run config and the checkpoint."""
    run_cfg, ckpt = read_checkpoint(path)
    model = build_model(run_cfg)
    load_weights(model, network_weights(ckpt), f"model '{run_cfg.model._target_}'")
    return model.eval(), run_cfg, ckpt

