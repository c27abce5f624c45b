"""A ctbench checkpoint read as data: weights, normalisation statistics and the run config, validated.

The stored run config comes from whoever made the file. A checkpoint describes a network, nothing else:
only that part is read, checked against the schema (:mod:`~ctbench.engine.checkpoint_schema`, bounds on
every value) and the closed allowlist (:func:`~ctbench.engine.allowlist.check_untrusted`) before anything
is imported or built, and the training machine's own paths (``model.pretrained``) are dropped: the
weights are in the file, so a checkpoint predicts anywhere. Data locations, caches, the voxel cap, output
paths and this machine's blocks (trainer, folders, loggers) come from the command and the local configs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ctbench.config import RunContext
from ctbench.engine.components import build_model, load_weights
from ctbench.engine.safe_load import safe_load
from ctbench.errors import CTBenchError, describe, printable

#: what a checkpoint may set in the command's run config: the network and how its input is prepared
NETWORK_BLOCKS = ("model", "loss", "optim", "dims", "names", "seed", "fold")
#: what the command may change key by key (``inference.overlap=0.5``), else the checkpoint's value is used
OVERRIDABLE_BLOCKS = ("inference", "postprocess")


def read_checkpoint(path: str | Path, allow: Iterable[str] = ()) -> tuple[DictConfig, dict[str, Any]]:
    """The network description stored in a ctbench checkpoint, validated (:mod:`checkpoint_schema`, then the
    allowlist with the user's ``allow`` classes), and the loaded checkpoint. Everything else in the stored
    run config (folders, caches, caps, trainer, loggers) is dropped unread."""
    from ctbench.engine.allowlist import check_untrusted
    from ctbench.engine.checkpoint_schema import validate_state, validate_stored

    source = f"checkpoint {path}"
    ckpt = safe_load(path)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    stored = hparams.get("cfg") if isinstance(hparams, dict) else None
    if not isinstance(stored, dict) or "model" not in stored:
        raise CTBenchError(f"{path} was not written by ctbench (no run config inside): pass a checkpoint from a "
                           "ctbench run", exit_code=2)
    kept = validate_stored(stored, source)
    check_untrusted(kept, source, allow)
    validate_state(ckpt, source)
    run_cfg = OmegaConf.create(kept)
    if "pretrained" in run_cfg.model:  # the weights are in this file; the training machine's path is not needed
        run_cfg.model.pretrained = None
    return run_cfg, ckpt


def trusted_classes(cfg: DictConfig, ctx: RunContext | None) -> list[str]:
    """Classes the user allows beyond the allowlist: ``trust.allow=[...]`` on this command line, never a file."""
    if ctx is None or not any(k in ("trust", "trust.allow") for k in ctx.given_keys()):
        return []
    allow = OmegaConf.select(cfg, "trust.allow") or []
    return [str(allow)] if isinstance(allow, str) else [str(a) for a in allow]


def local_dataset(name: str, ctx: RunContext) -> DictConfig:
    """The dataset block of this machine's ``configs/dataset/NAME.yaml`` under this command's overrides: where
    ``eval`` reads (and may generate) data when the command names no ``dataset=``."""
    from hydra.core.hydra_config import HydraConfig

    from ctbench.config import compose, group_choices

    if name not in group_choices("dataset"):
        raise CTBenchError(f"the checkpoint was trained on dataset '{printable(name)}', which has no config here: pass "
                           "dataset=NAME (and dataset.root=FOLDER) for the data to evaluate on", exit_code=2)
    saved = HydraConfig.instance().cfg
    try:
        return compose("eval", [o for o in ctx.overrides if not o.lstrip("+~").startswith("dataset=")]
                       + [f"dataset={name}"]).dataset
    finally:
        HydraConfig.instance().cfg = saved


def command_run_config(cfg: DictConfig, ctx: RunContext, path: str | Path,
                       dataset_of: Callable[[str], DictConfig] | None = None) -> tuple[DictConfig, dict[str, Any]]:
    """This command's config with the network of checkpoint ``path`` in it: the model, loss, optimiser, ``dims``,
    class names, preprocessing, patch sizes and (unless the command sets them) the inference settings come
    from the file; data locations, caches, the voxel cap, outputs and this machine's blocks from the command.

    ``dataset_of(name)``: the local dataset block of the checkpoint's dataset, used when the command names no
    ``dataset=`` (``eval``); else the command's own ``dataset`` block holds the locations.
    """
    from ctbench.engine.checkpoint_schema import DATASET_KEPT, validate_run_config

    stored, ckpt = read_checkpoint(path, trusted_classes(cfg, ctx))
    given = ctx.given_keys()
    run_cfg = cfg.copy()
    OmegaConf.set_struct(run_cfg, False)
    for key in NETWORK_BLOCKS:  # the weights belong to this network: the command does not change it
        if key in stored:
            run_cfg[key] = stored[key]
    for key in OVERRIDABLE_BLOCKS:
        if key in stored and key not in given:
            run_cfg[key] = stored[key]
    if "dataset" not in given:  # the command's dataset (or the local one of that name) with the file's network keys
        if dataset_of is not None:
            names = stored.get("names") or {}
            run_cfg.dataset = dataset_of(str(names.get("dataset") or stored.dataset.get("name")))
        for key in DATASET_KEPT:
            if key in stored.dataset:
                run_cfg.dataset[key] = stored.dataset[key]
    for dotted in given:  # single keys (dataset.test_cases=3, inference.overlap=0.5) change only themselves
        if "." in dotted and dotted.split(".")[0] in ("dataset", *OVERRIDABLE_BLOCKS):
            OmegaConf.update(run_cfg, dotted, OmegaConf.select(cfg, dotted), force_add=True)
    view = {key: OmegaConf.select(run_cfg, key) for key in ("dims", "inference", "postprocess")}
    view["dataset"] = {k: OmegaConf.select(run_cfg, f"dataset.{k}") for k in DATASET_KEPT}
    validate_run_config(OmegaConf.to_container(OmegaConf.create(view), resolve=True), f"the run config of {path}",
                        classes_later="dataset" in given)  # a dataset the command chose fills its classes later
    return run_cfg, ckpt


def network_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The network's tensors of a ctbench checkpoint (``model.*`` of the LightningModule's state)."""
    return {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}


def _build(run_cfg: DictConfig, source: str) -> torch.nn.Module:
    try:
        model = build_model(run_cfg)
    except CTBenchError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever a stored model block makes a constructor raise
        raise CTBenchError(f"refusing {source}: its model block does not build a network ({describe(err)[:160]}): "
                           "load only checkpoints written by ctbench", exit_code=2) from None
    if not isinstance(model, torch.nn.Module):
        raise CTBenchError(f"refusing {source}: its model block builds a {type(model).__name__}, not a network: "
                           "load only checkpoints written by ctbench", exit_code=2)
    return model


def check_weights_fit(run_cfg: DictConfig, ckpt: dict[str, Any], source: str) -> None:
    """Refuse (exit 2) a model block whose network would not hold exactly the checkpoint's weights, found by
    building it on PyTorch's ``meta`` device (shapes only, no memory): a stored block cannot make the real build
    allocate more than the tensors the file holds. A network that cannot be built on ``meta`` (it reads a
    value during construction) is checked after its real build, within the schema's width bound."""
    try:
        with torch.device("meta"):
            shell = build_model(run_cfg)
    except Exception:  # noqa: BLE001 - built for real below, where a failure is reported
        return
    if not isinstance(shell, torch.nn.Module):
        return  # refused by the real build
    wanted = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in network_weights(ckpt).items()}
    if wanted != given:
        differ = sorted(set(wanted) ^ set(given)) or [k for k in wanted if wanted[k] != given[k]]
        raise CTBenchError(f"checkpoint weights do not fit model '{run_cfg.model._target_}': '{differ[0]}' is "
                           f"{given.get(differ[0], 'missing')} in {source}, the network's is "
                           f"{wanted.get(differ[0], 'missing')} — use the checkpoint with the config it was trained "
                           "with", exit_code=2)


def network_of(run_cfg: DictConfig, ckpt: dict[str, Any], source: str) -> torch.nn.Module:
    """The network of a validated checkpoint (:func:`read_checkpoint`) with its weights, in eval mode."""
    check_weights_fit(run_cfg, ckpt, source)
    model = _build(run_cfg, source)
    load_weights(model, network_weights(ckpt), f"model '{run_cfg.model._target_}'")
    return model.eval()


def model_from_checkpoint(path: str | Path, allow: Iterable[str] = ()) -> tuple[torch.nn.Module, DictConfig,
                                                                             dict[str, Any]]:
    """The trained network of checkpoint ``path`` in eval mode, its run config and the checkpoint (``allow``:
    classes the user trusts beyond the allowlist, from the command line)."""
    run_cfg, ckpt = read_checkpoint(path, allow)
    return network_of(run_cfg, ckpt, f"checkpoint {path}"), run_cfg, ckpt

