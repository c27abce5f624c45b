"""The tasks behind ``ctbench train``, ``ctbench eval`` and ``ctbench predict``.

Each task takes the composed config and a :class:`~ctbench.config.RunContext` (run folder, group
choices, overrides), so it runs the same under the CLI's ``hydra.main`` and from :mod:`ctbench.api`.
``train``: fit, test the best checkpoint, write the run report. ``eval``: rebuild a run from its
checkpoint and re-test it. ``predict``: label maps for new NIfTI/DICOM input in its own geometry.
Only rank 0 writes run-level files, all into the one run folder.
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ctbench.config import RunContext, run_names
from ctbench.errors import CTBenchError

#: what a run writes into its folder; ``overwrite=true`` removes all of it before training again
RUN_OUTPUTS = ("checkpoints", "tensorboard", "csv", "report", "splits.json", "provenance.json",
               "resolved_config.yaml")


def validate(cfg: DictConfig) -> None:
    """Out-of-range values and unknown targets a user can type, caught before any work starts."""
    from ctbench.engine.checkpoint_schema import validate_inference
    from ctbench.engine.components import resolve_class

    if cfg.dims not in (2, 3):
        raise CTBenchError(f"dims={cfg.dims} is not supported: use dims=3 (volumes) or dims=2 (axial slices)")
    validate_inference({"dims": cfg.dims, "postprocess": cfg.get("postprocess"),
                        "inference": OmegaConf.to_container(cfg.inference, resolve=True)}, "this command's config")
    if cfg.get("postprocess") == "lcc" and cfg.dataset.get("class_names") is not None:
        from ctbench.engine.postprocess import single_component_classes

        single_component_classes(cfg.dataset)
    epochs = cfg.trainer.get("max_epochs")
    if epochs is not None and epochs < 1 and epochs != -1:
        raise CTBenchError(f"trainer.max_epochs={epochs} must be a positive number of epochs")
    if cfg.get("fold", 0) < 0:
        raise CTBenchError(f"fold={cfg.fold} must be 0 or more")
    for key in ("patch_size_2d", "patch_size_3d"):
        if any(int(p) < 1 for p in cfg.dataset[key]):
            raise CTBenchError(f"dataset.{key}={list(cfg.dataset[key])} must hold positive sizes")
    for key in ("optimizer", "scheduler"):
        node = cfg.get("optim", {}).get(key)
        if node is None or "_target_" not in node:
            raise CTBenchError(f"optim.{key} names no _target_: choose optim=adamw or optim=sgd_poly, or give "
                               f"optim.{key}._target_=CLASS", exit_code=2)
        resolve_class(str(node._target_), f"optim.{key}._target_")


def _report(cfg: DictConfig, module, out: Path, meta: dict[str, Any], split: str) -> dict[str, Any]:
    from ctbench.data.transforms import window_bounds
    from ctbench.reports.run_report import print_table, write_run_report

    names = list(cfg.dataset.class_names)[1:]
    headline = [c for c in cfg.dataset.get("headline_classes") or [] if c in names]
    summary = write_run_report(out / "report", module.test_rows, names,
                               {**meta, "split": split, "scope": "whole-volume", **module.predict_timing()},
                               module.overlays,
                               window_bounds(cfg.dataset.preprocessing.window), headline, module.lesion_iou)
    print_table(summary)
    print(f"report: {out / 'report'}")
    return summary


def code_segments(stored_file: Path, meta: dict[str, Any], ckpt: Path) -> dict[str, Any]:
    """``{"code_segments": [...]}`` when a run resumes with other code or on another kind of CPU than it was
    trained with so far: each segment's commit, uncommitted source files, CPU model and first epoch, also
    printed in one line; else ``{}``. The config check refuses another config; a code change is allowed (a fix)
    but recorded, since the run is then not the one either commit alone would train; so is a CPU change,
    since float kernels differ between CPUs (a record made before CPUs were recorded is not compared)."""
    import json

    from ctbench.engine.resume import checkpoint_epoch

    try:
        stored = json.loads(stored_file.read_text(encoding="utf-8")) if stored_file.is_file() else {}
    except (OSError, ValueError):
        stored = {}
    if not isinstance(stored, dict):
        stored = {}

    def cpu(record: dict[str, Any]) -> str | None:
        machine = record.get("machine")
        return machine.get("cpu") if isinstance(machine, dict) else None

    now = {"git_commit": meta["git_commit"], "source_changes": meta["source_changes"], "cpu": cpu(meta)}
    segments = stored.get("code_segments") if isinstance(stored.get("code_segments"), list) else None
    if segments is None:
        if "git_commit" not in stored:
            return {}
        segments = [{"git_commit": stored["git_commit"], "source_changes": stored.get("source_changes"),
                     "cpu": cpu(stored), "from_epoch": 0}]
    last = segments[-1]
    other_cpu = None not in (last.get("cpu"), now["cpu"]) and last.get("cpu") != now["cpu"]
    if all(last.get(k) == now[k] for k in ("git_commit", "source_changes")) and not other_cpu:
        return {"code_segments": segments} if len(segments) > 1 else {}
    epoch = checkpoint_epoch(ckpt)
    machines = f" (CPU {last.get('cpu')}, now {now['cpu']})" if other_cpu else ""
    print(f"resume: {stored_file.parent} was trained so far at commit {str(last.get('git_commit'))[:10]}"
          f"{' with uncommitted changes' if last.get('source_changes') else ''} and goes on at "
          f"{str(now['git_commit'])[:10]}{' with uncommitted changes' if now['source_changes'] else ''} from epoch "
          f"{epoch}{machines}: the run mixes two versions of the code or two kinds of CPU (provenance.json: "
          "code_segments)")
    return {"code_segments": [*segments, {**now, "from_epoch": epoch}]}


def _stopped(what: str, out: Path, trainer, phase: str) -> str:
    """One true line about a stopped run: where it stopped, what the resumable checkpoint holds, what to do."""
    from ctbench.engine.resume import checkpoint_position, resumable_checkpoint

    ckpt = resumable_checkpoint(out)
    saved = f"{ckpt} holds {checkpoint_position(ckpt)}" if ckpt else "no checkpoint was saved yet"
    return (f"{what} during {phase} at epoch {trainer.current_epoch}, step {trainer.global_step}; {saved}: "
            f"rerun the same command with resume=true hydra.run.dir={out}")


def _guarded(call, out: Path, trainer, phase: str) -> None:
    """Run a Lightning loop; SIGTERM and Ctrl+C end with :func:`_stopped`'s line and exit 143 / 130."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        call()
    except SIGTERMException:
        raise CTBenchError(_stopped("stopped by SIGTERM", out, trainer, phase), exit_code=143) from None
    except (KeyboardInterrupt, SystemExit) as exc:
        # Lightning turns Ctrl+C into sys.exit(1) raised while handling the KeyboardInterrupt; any other exit
        # (submitit's requeue on preemption, sys.exit(-1)) must leave the process as it is
        if not (isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt)):
            raise
        raise CTBenchError(_stopped("interrupted", out, trainer, phase), exit_code=130) from None


def _leave_process_group() -> None:
    """Under DDP, every rank waits for the others and tears its process group down before going on.

    Lightning destroys the group at exit only for NCCL; a gloo group left alive lets a rank's interpreter
    exit with gloo's threads still joinable, which aborts that rank ("terminate called without an active
    exception") and so, now and then, a run that had finished. Rank 0 then writes the report alone.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_config(cfg: DictConfig, ctx: RunContext) -> DictConfig:
    """The config a training run works with and records (``resolved_config.yaml``): validated, the dataset's
    classes filled in, the names of its config choices added."""
    from ctbench.data.datasets import resolve_classes

    validate(cfg)
    OmegaConf.set_struct(cfg, False)
    resolve_classes(cfg.dataset)
    cfg.names = run_names(ctx.choices)
    return cfg


def finished_run_differences(cfg: DictConfig, out: Path, ignore: tuple[str, ...] = ()) -> list[str]:
    """``key: old -> new`` between the complete run in ``out`` and the run ``cfg`` asks for (keys starting
    with one of ``ignore`` aside); empty when they are the same run or ``out`` records no config (a bare
    report folder of ``ctbench score``)."""
    from ctbench.engine.resume import config_differences
    from ctbench.safe_yaml import load_config

    stored_file = out / "resolved_config.yaml"
    if not stored_file.is_file():
        return []
    return [d for d in config_differences(load_config(stored_file), cfg, finished=True)
            if not d.startswith(tuple(ignore))]


def check_finished_run(cfg: DictConfig, out: Path) -> None:
    """Refuse a complete run in ``out`` that another config trained (e.g. 60 epochs where ``cfg`` asks for 100):
    skipping it would let its report stand for the run asked for."""
    differences = finished_run_differences(cfg, out)
    if differences:
        shown = "; ".join(differences[:2]) + (f" and {len(differences) - 2} more" if len(differences) > 2 else "")
        raise CTBenchError(f"{out} holds a complete run of another config ({shown}): move it away or add "
                           "overwrite=true to train this one there", exit_code=2)


def _check_resume(cfg: DictConfig, ctx: RunContext, ckpt: Path | None) -> None:
    """``resume=true`` continues only the same run: the same config, in a folder that holds its checkpoint."""
    from ctbench.engine.checkpoint import read_checkpoint
    from ctbench.engine.resume import config_differences, find_run_of_config
    from ctbench.safe_yaml import load_config

    out = ctx.run_dir
    if ckpt is None:
        found = find_run_of_config(cfg, out.parent, exclude=out)
        given = " ".join(o for o in ctx.overrides if not o.startswith("hydra.run.dir="))
        if found is not None:
            raise CTBenchError(f"resume=true: {out} is a new folder; the run of this config is {found}: resume it "
                               f"with `ctbench train {given} hydra.run.dir={found}`", exit_code=2)
        raise CTBenchError(f"resume=true but no run of this config with a checkpoint is below {out.parent}: give "
                           "the run's folder (`hydra.run.dir=RUN_DIR`) or drop resume=true to start a new run",
                           exit_code=2)
    stored_file = out / "resolved_config.yaml"
    stored = load_config(stored_file) if stored_file.is_file() else read_checkpoint(ckpt)[0]
    differences = config_differences(stored, cfg)
    if differences:
        keys = [d.split(":", 1)[0] for d in differences]
        shown = "; ".join(differences[:2]) + (f"; also {', '.join(keys[2:12])}" if len(keys) > 2 else "") + (
            f" and {len(keys) - 12} more" if len(keys) > 12 else "")
        raise CTBenchError(f"resume=true would continue {out} with another config ({shown}): resume with the "
                           "run's own settings (only trainer.devices, output options and, outside a study preset, "
                           "trainer.max_epochs may change), or start a new run", exit_code=2)


def _clear_run_outputs(out: Path) -> None:
    """``overwrite=true``: remove the earlier run's checkpoints, logs and report before training again."""
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for hpc in out.glob("hpc_ckpt_*.ckpt"):
        hpc.unlink()


def _tested_checkpoint(out: Path, module) -> tuple[Path, dict[str, Any]]:
    """``best.ckpt`` (else ``last.ckpt``) of this run, refused when it was written by another config."""
    from ctbench.engine.resume import fingerprint
    from ctbench.engine.safe_load import safe_load

    best, last = out / "checkpoints" / "best.ckpt", out / "checkpoints" / "last.ckpt"
    weights = best if best.exists() else last
    ckpt = safe_load(weights)
    stored = (ckpt.get("hyper_parameters") or {}).get("cfg") or {}
    mine = fingerprint(module.hparams["cfg"])
    if fingerprint(stored) != mine:
        raise CTBenchError(f"{weights} was written by another run (config fingerprint {fingerprint(stored)}, this "
                           f"run's {mine}): not testing it; train again with overwrite=true", exit_code=1)
    return weights, ckpt


def _one_process(ctx: RunContext, doing: str) -> AbstractContextManager:
    """The run folder's lock (:mod:`ctbench.folder_lock`) for rank zero; the other DDP ranks of the same run share
    its folder and take none."""
    from lightning.pytorch.utilities import rank_zero_only

    from ctbench import folder_lock

    return folder_lock.exclusive(ctx.run_dir, doing) if rank_zero_only.rank == 0 else nullcontext()


def train(cfg: DictConfig, ctx: RunContext) -> dict[str, Any] | None:
    """Fit, test the best checkpoint on the test split, write ``report/``; returns the report summary.

    A rerun of the same sweep skips jobs whose report is complete and resumes those that have a
    checkpoint; a single run needs ``resume=true`` (or ``overwrite=true``) to reuse its folder. One process
    at a time trains in a folder: a second is refused (exit 2) while the first runs.
    """
    with _one_process(ctx, "training"):
        return _train(cfg, ctx)


def _train(cfg: DictConfig, ctx: RunContext) -> dict[str, Any] | None:
    import lightning.pytorch as pl
    from lightning.pytorch.utilities import rank_zero_only

    from ctbench.atomic import atomic_write_json, atomic_write_text
    from ctbench.engine.build import build_datamodule, build_module, build_trainer
    from ctbench.engine.resume import fingerprint, resumable_checkpoint
    from ctbench.models.base import parameter_count
    from ctbench.provenance import run_provenance
    from ctbench.run_folder import is_complete

    cfg = run_config(cfg, ctx)
    out = ctx.run_dir
    overwrite = bool(cfg.get("overwrite", False))
    if is_complete(out) and not overwrite:
        check_finished_run(cfg, out)
        print(f"{out} already holds a complete report: skipped (overwrite=true to train again)")
        return None
    ckpt = None if overwrite else resumable_checkpoint(out)
    resume = bool(cfg.resume) or (ctx.multirun and ckpt is not None)
    if ckpt is not None and not resume:
        raise CTBenchError(f"{out} already holds checkpoints: add resume=true to continue that run "
                           "or overwrite=true to start it again")
    if resume and ckpt is None and (ctx.multirun or ctx.run_dir_given):
        print(f"resume=true: {out} holds no checkpoint yet: starting the run")
    elif resume:
        _check_resume(cfg, ctx, ckpt)
    if overwrite and rank_zero_only.rank == 0:
        _clear_run_outputs(out)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    module = build_module(cfg)
    data = build_datamodule(cfg, int(getattr(module.model, "size_divisor", 1)), module.loss_fn)
    trainer = build_trainer(cfg, out)
    meta = {"model": cfg.names.model, "loss": cfg.names.loss, "dataset": str(cfg.dataset.name),
            "dims": int(cfg.dims), **run_provenance(cfg.seed, cfg.fold), "params": parameter_count(module.model),
            "config_fingerprint": fingerprint(cfg)}
    if ckpt is not None and resume:
        meta.update(code_segments(out / "provenance.json", meta, ckpt))
    if trainer.is_global_zero:
        atomic_write_text(out / "resolved_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        atomic_write_json(out / "provenance.json", meta)
    if ckpt is not None:
        print(f"resuming from {ckpt}")
    _guarded(lambda: trainer.fit(module, datamodule=data, ckpt_path=str(ckpt) if ckpt else None), out, trainer,
             "training")
    seconds = module.train_seconds()  # every process of a resumed run, not only this one
    if trainer.is_global_zero:
        atomic_write_json(out / "splits.json", data.split)
    weights, tested = _tested_checkpoint(out, module)
    module.load_state_dict(tested["state_dict"])
    _guarded(lambda: trainer.test(module, datamodule=data, verbose=False), out, trainer, f"the test of {weights.name}")
    _leave_process_group()
    if not trainer.is_global_zero:
        return None
    meta.update(epochs=int(trainer.current_epoch), train_seconds=round(seconds, 1), checkpoint=weights.name,
                checkpoint_epoch=tested.get("epoch"), checkpoint_step=tested.get("global_step"),
                convergence=_convergence(cfg, module, trainer))
    summary = _report(cfg, module, out, meta, "test")
    _write_progress(out)
    return summary


def _convergence(cfg: DictConfig, module, trainer) -> dict[str, Any]:
    """``summary.json``'s convergence block: the module's validation curve against ``study.plateau``."""
    from ctbench.reports.convergence import DEFAULT_PLATEAU, convergence

    plateau = OmegaConf.select(cfg, "study.plateau", default=DEFAULT_PLATEAU)
    return convergence(module.val_history, int(trainer.current_epoch), bool(module.schedule_completed), plateau)


def _write_progress(out: Path) -> None:
    """``report/progress.png`` (loss, validation Dice, learning rate per epoch) when the module exists."""
    try:
        from ctbench.reports.progress import write_progress_png
    except ImportError:
        return
    write_progress_png(out)


def evaluate(cfg: DictConfig, ctx: RunContext) -> dict[str, Any] | None:
    """Re-test a checkpoint on ``split`` (test by default) and write ``report/`` in this run folder (one process
    at a time, as :func:`train`)."""
    with _one_process(ctx, "evaluating"):
        return _evaluate(cfg, ctx)


def _evaluate(cfg: DictConfig, ctx: RunContext) -> dict[str, Any] | None:
    from ctbench.data.datasets import resolve_classes
    from ctbench.engine.build import build_datamodule, build_trainer, module_from_checkpoint
    from ctbench.engine.checkpoint import check_weights_fit, command_run_config, local_dataset
    from ctbench.models.base import parameter_count
    from ctbench.provenance import run_provenance
    from ctbench.run_folder import is_complete

    if not cfg.get("ckpt_path"):
        raise CTBenchError("no checkpoint given: pass ckpt_path=RUN_DIR/checkpoints/best.ckpt")
    split = cfg.get("split", "test")
    if split not in ("test", "val"):
        raise CTBenchError(f"split={split} is not supported by eval: use test or val")
    if is_complete(ctx.run_dir) and not cfg.get("overwrite", False):  # the run-folder contract of train
        raise CTBenchError(f"{ctx.run_dir} already holds a complete report: evaluate into a new folder "
                           "(drop hydra.run.dir=...) or add overwrite=true to replace it", exit_code=2)
    run_cfg, ckpt = command_run_config(cfg, ctx, cfg.ckpt_path, lambda name: local_dataset(name, ctx))
    validate(run_cfg)
    OmegaConf.set_struct(run_cfg, False)
    run_cfg.dataset.keep_existing = True  # eval writes no dataset folder it did not create in this command
    resolve_classes(run_cfg.dataset)
    if int(run_cfg.dataset.num_classes) != int(run_cfg.model.out_channels):
        raise CTBenchError(f"dataset '{run_cfg.dataset.name}' has {run_cfg.dataset.num_classes} classes "
                           f"({', '.join(run_cfg.dataset.class_names)}) but the checkpoint's model predicts "
                           f"{run_cfg.model.out_channels}: evaluate on a dataset with the classes it was trained on")
    check_weights_fit(run_cfg, ckpt, f"checkpoint {cfg.ckpt_path}")
    module = module_from_checkpoint(run_cfg, ckpt)
    data = build_datamodule(run_cfg, int(getattr(module.model, "size_divisor", 1)), module.loss_fn)
    trainer = build_trainer(run_cfg, ctx.run_dir, fit=False)
    data.prepare_data()  # the integrity check, as before training
    data.setup()
    loader = data.test_dataloader() if split == "test" else data._loader(data.eval_dataset("val"), 1, False)
    _guarded(lambda: trainer.test(module, dataloaders=loader, verbose=False), ctx.run_dir, trainer, "the test")
    _leave_process_group()
    if not trainer.is_global_zero:
        return None
    names = run_cfg.get("names") or {}
    meta = {"model": str(names.get("model", run_cfg.model._target_.split(".")[-1])),
            "loss": str(names.get("loss", run_cfg.loss._target_.split(".")[-1])),
            "dataset": str(run_cfg.dataset.name), "dims": int(run_cfg.dims),
            **run_provenance(run_cfg.seed, run_cfg.fold), "params": parameter_count(module.model),
            "epochs": ckpt.get("epoch"), "checkpoint": str(cfg.ckpt_path), "checkpoint_epoch": ckpt.get("epoch"),
            "checkpoint_step": ckpt.get("global_step"), "train_seconds": None}
    return _report(run_cfg, module, ctx.run_dir, meta, split)


def predict(cfg: DictConfig, ctx: RunContext) -> list[Path]:
    """Label maps for NIfTI file(s) or a DICOM folder, written in each input's own geometry."""
    from ctbench.engine.predict import checkpoint_paths, load_members, predict_inputs

    checkpoint_paths(cfg.get("ckpt_path"))
    if not cfg.get("input"):
        raise CTBenchError("no input given: pass input=FILE.nii.gz, a folder of NIfTI files, or a DICOM folder")
    if not cfg.get("output_dir"):
        raise CTBenchError("no output folder given: pass output_dir=FOLDER")
    members = load_members(cfg, ctx)  # one Segmenter per checkpoint, no Lightning: faster start-up
    return predict_inputs(members, Path(cfg.input), Path(cfg.output_dir), cfg)
