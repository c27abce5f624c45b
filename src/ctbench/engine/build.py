"""Config -> objects with Lightning: the LightningModule, data, trainer, loggers and callbacks.

Networks and losses, ``instantiate`` and the untrusted-config check are in
:mod:`ctbench.engine.components` (below this module and :mod:`ctbench.engine.module`). Lightning is
imported only by the functions that need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ctbench.engine.components import instantiate, load_weights, resolve_class
from ctbench.errors import CTBenchError

# ---------------------------------------------------------------------------------------- components


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


def module_from_checkpoint(run_cfg: DictConfig, ckpt: dict[str, Any]):
    """The LightningModule of ``run_cfg`` (a config from :func:`~ctbench.engine.checkpoint.read_checkpoint`
    or :func:`~ctbench.engine.checkpoint.command_run_config`) with the checkpoint's weights."""
    module = build_module(run_cfg)
    load_weights(module, ckpt["state_dict"], f"model '{run_cfg.model._target_}'")
    return module


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
    """The run's callbacks: checkpoints, save-on-interrupt and a SIGTERM that stops every DDP rank (the run
    folder's contract, always there when fitting), the progress bar (``progress_bar``), then the ``callbacks`` group's."""
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

    from ctbench.engine.callbacks import SaveOnInterrupt, SigtermOnEveryRank

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
        SigtermOnEveryRank(),
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
