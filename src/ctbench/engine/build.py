"""Config -> objects: the one public build layer (model, loss, LightningModule, data, trainer, loggers).

Every ``_target_`` ctbench calls goes through :func:`instantiate`, which turns Hydra's wrapped
exceptions back into the project's one-line errors. A config read from a file someone else made (a
checkpoint's stored run config) is *untrusted*: before anything is imported or called,
:func:`check_untrusted` walks it and refuses, with one line naming the key and the target, any
``_target_`` (or ``lightning_module``) that is not a class of ctbench itself or a network, loss,
optimiser or scheduler class of MONAI / ``torch.nn`` / ``torch.optim``, or a Lightning trainer
option; interpolations (``${...}``) are refused too, since resolving them could build new targets.
The user's own command line and config files stay trusted.

Lightning is imported only by the functions that need it, so ``ctbench predict`` (model + weights)
starts without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from ctbench.errors import CTBenchError

#: library packages whose classes a stored config may name (besides ctbench's own)
LIBRARY_PREFIXES = ("monai.", "torch.nn.", "torch.optim.", "lightning.pytorch.")
_DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")


# ---------------------------------------------------------------------------------------- untrusted


def _library_bases() -> tuple[type, ...]:
    return (torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)


def _allowed_class(target: str) -> bool:
    """``target`` is a class of ctbench, or a network/loss/optimiser/scheduler class of an allowed library,
    or a Lightning trainer option class. Only dotted names under those packages are imported at all."""
    if not _DOTTED.match(target) or not (target.startswith("ctbench.") or target.startswith(LIBRARY_PREFIXES)):
        return False
    from hydra._internal.utils import _locate

    try:
        obj = _locate(target)
    except Exception:  # noqa: BLE001 - any failure to locate means "not an allowed class"
        return False
    if not isinstance(obj, type):
        return False
    module = getattr(obj, "__module__", "") or ""
    if module.startswith("ctbench."):
        return True
    if module.startswith("lightning.pytorch."):
        return True
    return module.startswith(LIBRARY_PREFIXES) and issubclass(obj, _library_bases())


def check_untrusted(node: Any, source: str, path: str = "") -> None:
    """Refuse (one line) a config from ``source`` that names anything but ctbench's own components and
    the library classes its configs use, or that holds an interpolation. Checked before any call."""
    if isinstance(node, Mapping | DictConfig):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key in ("_target_", "lightning_module"):
                if not isinstance(value, str) or not _allowed_class(value):
                    raise CTBenchError(f"refusing {source}: '{where}' names '{value}', which is not a ctbench "
                                       "component nor a MONAI/torch network, loss or optimiser class: load only "
                                       "checkpoints written by ctbench", exit_code=2)
            else:
                check_untrusted(value, source, where)
    elif isinstance(node, list | tuple | ListConfig):
        for i, value in enumerate(node):
            check_untrusted(value, source, f"{path}[{i}]")
    elif isinstance(node, str) and "${" in node:
        raise CTBenchError(f"refusing {source}: '{path}' holds an interpolation ({node[:60]!r}); a stored run "
                           "config is always resolved: load only checkpoints written by ctbench", exit_code=2)


# ---------------------------------------------------------------------------------------- instantiate


def instantiate(node: Any, what: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``; a user error inside keeps its one line, a bad key or
    target becomes one line naming ``what`` (e.g. ``"loss"``) and the cause."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, CTBenchError):
            raise cause from None
        target = node.get("_target_", "?") if isinstance(node, Mapping | DictConfig) else "?"
        if cause is None or isinstance(cause, TypeError | ImportError | AttributeError | ValueError):
            reason = str(cause if cause is not None else exc).splitlines()[0][:200]
            raise CTBenchError(f"cannot build {what} '{target}': {reason} (check the {what}.* keys, "
                               f"`ctbench train --cfg job` shows them)", exit_code=2) from None
        raise


def resolve_class(target: str, what: str) -> type:
    """The class a dotted ``target`` names, or one line saying which key is wrong."""
    from hydra.utils import get_class

    try:
        return get_class(target)
    except Exception as err:  # noqa: BLE001 - Hydra raises several types for a bad path
        raise CTBenchError(f"{what}='{target}' does not name a class: {str(err).splitlines()[0][:160]}",
                           exit_code=2) from None


# ---------------------------------------------------------------------------------------- components


def build_model(cfg: DictConfig) -> torch.nn.Module:
    """The configured network (``cfg.model`` without its ``lightning_module`` key)."""
    node = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    node.pop("lightning_module", None)
    return instantiate(node, "model", _convert_="all")


def build_loss(cfg: DictConfig) -> torch.nn.Module:
    """The configured loss, called as ``loss(logits [B, C, ...], target [B, 1, ...])``."""
    return instantiate(cfg.loss, "loss")


def module_class(cfg: DictConfig) -> type:
    """The LightningModule that trains ``cfg.model``: ``model.lightning_module`` in the model's YAML
    (SegAN, cascaded FCN), else :class:`~ctbench.engine.module.SegmentationModule`."""
    target = cfg.model.get("lightning_module")
    if not target:
        from ctbench.engine.module import SegmentationModule

        return SegmentationModule
    return resolve_class(str(target), "model.lightning_module")


def build_module(cfg: DictConfig):
    """The LightningModule for ``cfg`` (model, loss, optimiser and inference inside)."""
    return module_class(cfg)(cfg)


def load_weights(model: torch.nn.Module, state_dict: Mapping[str, Any], what: str) -> None:
    """``model.load_state_dict(state_dict)`` with one line when the weights belong to another network."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise CTBenchError(f"checkpoint weights do not fit {what}: {str(err).splitlines()[0][:200]} — use the "
                           "checkpoint with the config it was trained with") from err


def build_datamodule(cfg: DictConfig, size_divisor: int, loss: torch.nn.Module | None = None):
    """The :class:`~ctbench.data.datamodule.CTDataModule` of ``cfg`` (cache in ``dataset.cache_dir``).

    ``loss``: the built loss; one that trains on a weight map (``uses_weight_map``) gets it cached by
    the data pipeline with the loss's own settings.
    """
    from ctbench.data.datamodule import CTDataModule

    cache = Path(str(cfg.dataset.cache_dir)).resolve()
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    on_gpu = torch.cuda.is_available() if accelerator == "auto" else accelerator in ("gpu", "cuda")
    devices = cfg.trainer.get("devices", 1)
    per_node = devices if isinstance(devices, int) and devices > 0 else 1
    weight_map = None
    if getattr(loss, "uses_weight_map", False):
        weight_map = {k: v for k, v in cfg.loss.items() if k != "_target_"}
    return CTDataModule(cfg.dataset, int(cfg.dims), int(cfg.fold), cache, size_divisor, seed=int(cfg.seed),
                        on_gpu=on_gpu, devices=per_node, weight_map=weight_map,
                        augment=cfg.get("augment"))


# ---------------------------------------------------------------------------------------- trainer


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Any]:
    """The ``logger`` group's loggers; a logger whose ``save_dir`` is null writes into ``run_dir``; a
    logger's ``environment`` mapping is set in the process environment unless already set."""
    import os

    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if node is None:
            continue
        node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
        for key, value in (node.pop("environment", None) or {}).items():
            os.environ.setdefault(str(key), str(value))
        save_dir = node.get("save_dir")
        kwargs = {"save_dir": str(Path(save_dir).resolve() if save_dir else run_dir)}
        try:
            loggers.append(instantiate(node, f"logger.{name}", **kwargs))
        except ModuleNotFoundError as err:
            raise CTBenchError(f"logger={name} needs the package '{err.name}': pip install 'ctbench[{name}]' "
                               f"(or choose another logger=...)", exit_code=2) from None
    return loggers


def build_callbacks(cfg: DictConfig, run_dir: Path, fit: bool = True) -> list[Any]:
    """The run's callbacks: checkpoints and save-on-interrupt (the run folder's contract, always there when
    fitting), the progress bar (``progress_bar``), then the ``callbacks`` group's."""
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

    from ctbench.engine.callbacks import SaveOnInterrupt

    callbacks: list[Any] = [RichProgressBar(leave=True)] if cfg.get("progress_bar", True) else []
    if not fit:
        return callbacks
    ckpt_dir = run_dir / "checkpoints"
    callbacks += [
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/mean_dice", mode="max", save_top_k=1,
                        auto_insert_metric_name=False, enable_version_counter=False),
        ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, every_n_epochs=1,
                        save_on_train_epoch_end=True, enable_version_counter=False),
        SaveOnInterrupt(ckpt_dir / "last.ckpt"),
    ]
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is not None:
            callbacks.append(instantiate(node, f"callbacks.{name}"))
    return callbacks


def _needs_logger(callback: Any) -> bool:
    from lightning.pytorch.callbacks import LearningRateMonitor

    return isinstance(callback, LearningRateMonitor)


def build_trainer(cfg: DictConfig, run_dir: Path, fit: bool = True):
    """A Lightning ``Trainer`` from ``cfg.trainer`` with the run's loggers, callbacks and atomic checkpoints
    (``logger=none`` drops the callbacks that only write to a logger, e.g. the learning-rate monitor)."""
    from ctbench.engine.checkpoint_io import AtomicCheckpointIO

    loggers = build_loggers(cfg, run_dir)
    callbacks = [c for c in build_callbacks(cfg, run_dir, fit) if loggers or not _needs_logger(c)]
    return instantiate(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False,
                       plugins=[AtomicCheckpointIO()], default_root_dir=str(run_dir),
                       enable_progress_bar=bool(cfg.get("progress_bar", True)), _convert_="all")
