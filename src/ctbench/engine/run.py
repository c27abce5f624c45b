"""The Hydra tasks behind ``ctbench train``, ``ctbench eval`` and ``ctbench predict``.

``train``: fit, test the best checkpoint, write the run report. ``eval``: rebuild a run from its
checkpoint and re-test it. ``predict``: label maps for new NIfTI/DICOM input in its own geometry.
Only rank 0 writes run-level files, all into Hydra's one run directory.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ctbench.errors import CTBenchError


def run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def choices() -> dict[str, str]:
    from hydra.core.hydra_config import HydraConfig

    return {k: str(v) for k, v in HydraConfig.get().runtime.choices.items() if v is not None}


def validate(cfg: DictConfig) -> None:
    """Out-of-range values a user can type, caught before any work starts."""
    if cfg.dims not in (2, 3):
        raise CTBenchError(f"dims={cfg.dims} is not supported: use dims=3 (volumes) or dims=2 (axial slices)")
    epochs = cfg.trainer.get("max_epochs")
    if epochs is not None and epochs < 1 and epochs != -1:
        raise CTBenchError(f"trainer.max_epochs={epochs} must be a positive number of epochs")
    if cfg.get("fold", 0) < 0:
        raise CTBenchError(f"fold={cfg.fold} must be 0 or more")
    for key in ("patch_size_2d", "patch_size_3d"):
        if any(int(p) < 1 for p in cfg.dataset[key]):
            raise CTBenchError(f"dataset.{key}={list(cfg.dataset[key])} must hold positive sizes")


def provenance(cfg: DictConfig) -> dict[str, Any]:
    """Seed, git commit and package versions of this run (written into the report and run folder)."""
    import importlib.metadata as md

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    versions = {}
    for pkg in ("ctbench", "torch", "lightning", "monai", "hydra-core", "numpy", "nibabel", "SimpleITK"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"seed": int(cfg.seed), "fold": int(cfg.fold), "git_commit": commit,
            "versions": {**versions, "python": platform.python_version()}}


def _module_class(cfg: DictConfig):
    """SegmentationModule, or the LightningModule a model names (``lightning_module = "pkg.mod:Class"``)."""
    import importlib

    from hydra.utils import get_class

    from ctbench.engine.module import SegmentationModule

    target = getattr(get_class(cfg.model._target_), "lightning_module", None)
    if not target:
        return SegmentationModule
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _trainer(cfg: DictConfig, out: Path, with_callbacks: bool = True):
    import lightning.pytorch as pl
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    from ctbench.engine.callbacks import SaveOnInterrupt
    from ctbench.engine.checkpoint_io import AtomicCheckpointIO

    callbacks: list[pl.Callback] = [RichProgressBar(leave=True)] if cfg.get("progress_bar", True) else []
    if with_callbacks:
        callbacks += [
            ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val/mean_dice", mode="max",
                            save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False),
            ModelCheckpoint(dirpath=out / "checkpoints", filename="last", save_top_k=1, every_n_epochs=1,
                            save_on_train_epoch_end=True, enable_version_counter=False),
            LearningRateMonitor(logging_interval="epoch"),
            SaveOnInterrupt(out / "checkpoints" / "last.ckpt"),
        ]
    logger = TensorBoardLogger(save_dir=str(out), name="tensorboard", version="", default_hp_metric=False)
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger, plugins=[AtomicCheckpointIO()],
                       default_root_dir=str(out), enable_progress_bar=bool(callbacks) and cfg.get("progress_bar", True),
                       _convert_="all")


def _datamodule(cfg: DictConfig, size_divisor: int):
    from ctbench.data.datamodule import CTDataModule

    cache = Path(cfg.paths.cache_dir).resolve() / str(cfg.dataset.name)
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator == "auto":
        import torch

        on_gpu = torch.cuda.is_available()
    else:
        on_gpu = accelerator in ("gpu", "cuda")
    devices = cfg.trainer.get("devices", 1)
    per_node = devices if isinstance(devices, int) and devices > 0 else 1
    from hydra.utils import get_class

    uses_map = getattr(get_class(cfg.loss._target_), "uses_weight_map", False)
    weight_map = {k: v for k, v in cfg.loss.items() if k != "_target_"} if uses_map else None
    return CTDataModule(cfg.dataset, int(cfg.dims), int(cfg.fold), cache, size_divisor, seed=int(cfg.seed),
                        on_gpu=on_gpu, devices=per_node, weight_map=weight_map,
                        augment=cfg.get("augment"))


def _report(cfg: DictConfig, module, out: Path, meta: dict[str, Any], split: str) -> dict[str, Any]:
    from ctbench.data.transforms import window_bounds
    from ctbench.reports.run_report import print_table, write_run_report

    names = list(cfg.dataset.class_names)[1:]
    headline = [c for c in cfg.dataset.get("headline_classes") or [] if c in names]
    summary = write_run_report(out / "report", module.test_rows, names,
                               {**meta, "split": split, "scope": "whole-volume"}, module.overlays,
                               window_bounds(cfg.dataset.preprocessing.window), headline)
    print_table(summary)
    print(f"report: {out / 'report'}")
    return summary


def _is_complete(out: Path) -> bool:
    path = out / "report" / "summary.json"
    try:
        return json.loads(path.read_text()).get("status") == "complete"
    except (OSError, json.JSONDecodeError):
        return False


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


def train(cfg: DictConfig) -> dict[str, Any] | None:
    """Fit, test the best checkpoint on the test split, write ``report/``.

    A rerun of the same sweep skips jobs whose report is complete and resumes those that have a
    ``last.ckpt``; a single run needs ``resume=true`` (or ``overwrite=true``) to reuse its folder.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from ctbench.atomic import atomic_write_json, atomic_write_text
    from ctbench.data.datasets import resolve_classes
    from ctbench.engine.safe_load import safe_load

    validate(cfg)
    OmegaConf.set_struct(cfg, False)
    resolve_classes(cfg.dataset)
    out = run_dir()
    last = out / "checkpoints" / "last.ckpt"
    if _is_complete(out) and not cfg.get("overwrite", False):
        print(f"{out} already holds a complete report: skipped (overwrite=true to train again)")
        return None
    resume = bool(cfg.resume) or (_in_multirun() and last.exists() and not cfg.get("overwrite", False))
    if last.exists() and not resume and not cfg.get("overwrite", False):
        raise CTBenchError(f"{out} already holds checkpoints: add resume=true to continue that run "
                           "or overwrite=true to start it again")
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    names = choices()
    cfg.names = {k: names.get(k, "custom") for k in ("model", "loss", "dataset")}
    module = _module_class(cfg)(cfg)
    size_divisor = int(getattr(module.model, "size_divisor", 1))
    data = _datamodule(cfg, size_divisor)
    trainer = _trainer(cfg, out)
    meta = {"model": cfg.names.model, "loss": cfg.names.loss,
            "dataset": str(cfg.dataset.name), "dims": int(cfg.dims), **provenance(cfg),
            "params": sum(p.numel() for p in module.model.parameters())}
    if trainer.is_global_zero:
        atomic_write_text(out / "resolved_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        atomic_write_json(out / "provenance.json", meta)
    resume_from = str(last) if resume and last.exists() else None
    if resume and resume_from is None:
        print(f"resume=true but {last} does not exist yet: starting from scratch")
    elif resume_from:
        print(f"resuming from {last}")
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    except SIGTERMException:
        raise CTBenchError(f"stopped by SIGTERM at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                           f"saved {last}: rerun the same command with resume=true", exit_code=143) from None
    seconds = time.perf_counter() - start
    if trainer.interrupted:
        raise CTBenchError(f"training was interrupted; resume it with the same command plus resume=true "
                           f"(last checkpoint: {last})", exit_code=130)
    if trainer.is_global_zero:
        atomic_write_json(out / "splits.json", data.split)
    best = out / "checkpoints" / "best.ckpt"
    weights = best if best.exists() else last
    module.load_state_dict(safe_load(weights)["state_dict"])
    trainer.test(module, datamodule=data, verbose=False)
    if not trainer.is_global_zero:
        return None
    meta.update(epochs=int(trainer.current_epoch), train_seconds=round(seconds, 1), checkpoint=weights.name)
    return _report(cfg, module, out, meta, "test")


def _checkpoint_config(cfg: DictConfig) -> tuple[DictConfig, dict[str, Any]]:
    """The run config stored in ``cfg.ckpt_path``, with this command's dataset/inference overrides on top."""
    from hydra.core.hydra_config import HydraConfig

    from ctbench.engine.safe_load import safe_load

    if not cfg.get("ckpt_path"):
        raise CTBenchError("no checkpoint given: pass ckpt_path=RUN_DIR/checkpoints/best.ckpt")
    ckpt = safe_load(cfg.ckpt_path)
    stored = (ckpt.get("hyper_parameters") or {}).get("cfg")
    if stored is None:
        raise CTBenchError(f"{cfg.ckpt_path} was not written by ctbench (no run config inside): "
                           "pass a checkpoint from a ctbench run")
    run_cfg = OmegaConf.create(stored)
    given = [o.lstrip("+~").split("=")[0] for o in HydraConfig.get().overrides.task]
    for key in ("dataset", "inference", "metrics", "report", "trainer", "paths", "postprocess"):
        if key in given or key not in run_cfg:  # a new group choice replaces the stored block
            run_cfg[key] = cfg[key]
    for dotted in given:  # single keys (dataset.test_cases=3) change only themselves
        if "." in dotted and dotted.split(".")[0] in ("dataset", "inference", "metrics", "report", "trainer", "paths"):
            OmegaConf.update(run_cfg, dotted, OmegaConf.select(cfg, dotted), force_add=True)
    run_cfg.progress_bar = cfg.get("progress_bar", True)
    return run_cfg, ckpt


def _load_module(run_cfg: DictConfig, ckpt: dict[str, Any]):
    module = _module_class(run_cfg)(run_cfg)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise CTBenchError(f"checkpoint weights do not fit model '{run_cfg.model._target_}': "
                           f"{str(err).splitlines()[0][:200]} — use the checkpoint with the config it was trained "
                           "with") from err
    return module


def evaluate(cfg: DictConfig) -> dict[str, Any] | None:
    """Re-test a checkpoint on ``split`` (test by default) and write ``report/`` in this run directory."""
    run_cfg, ckpt = _checkpoint_config(cfg)
    validate(run_cfg)
    module = _load_module(run_cfg, ckpt)
    data = _datamodule(run_cfg, int(getattr(module.model, "size_divisor", 1)))
    trainer = _trainer(run_cfg, run_dir(), with_callbacks=False)
    split = cfg.get("split", "test")
    data.setup()
    if split not in ("test", "val"):
        raise CTBenchError(f"split={split} is not supported by eval: use test or val")
    loader = data.test_dataloader() if split == "test" else data._loader(data.eval_dataset("val"), 1, False)
    trainer.test(module, dataloaders=loader, verbose=False)
    if not trainer.is_global_zero:
        return None
    names = run_cfg.get("names") or {}
    meta = {"model": str(names.get("model", run_cfg.model._target_.split(".")[-1])),
            "loss": str(names.get("loss", run_cfg.loss._target_.split(".")[-1])),
            "dataset": str(run_cfg.dataset.name), "dims": int(run_cfg.dims), **provenance(run_cfg),
            "params": sum(p.numel() for p in module.model.parameters()), "epochs": ckpt.get("epoch"),
            "checkpoint": str(cfg.ckpt_path), "train_seconds": None}
    return _report(run_cfg, module, run_dir(), meta, split)


def predict(cfg: DictConfig) -> None:
    """Label maps for NIfTI file(s) or a DICOM folder, written in each input's own geometry."""
    from ctbench.engine.predict import predict_inputs
    from ctbench.engine.segmenter import Segmenter

    run_cfg, ckpt = _checkpoint_config(cfg)
    segmenter = Segmenter.from_checkpoint(run_cfg, ckpt["state_dict"])  # no Lightning: faster start-up
    if not cfg.get("input"):
        raise CTBenchError("no input given: pass input=FILE.nii.gz, a folder of NIfTI files, or a DICOM folder")
    if not cfg.get("output_dir"):
        raise CTBenchError("no output folder given: pass output_dir=FOLDER")
    zscore = ckpt.get("ctbench_zscore")
    predict_inputs(segmenter, run_cfg, Path(cfg.input), Path(cfg.output_dir), cfg, tuple(zscore) if zscore else None)
