"""ctbench from Python (notebooks, other programs): the CLI's tasks without a Hydra runtime in the caller.

Every function takes the same overrides as the command line and composes through
:func:`ctbench.config.compose`, so a call and the matching ``ctbench`` command run the same config::

    from ctbench import api

    summary = api.train(["model=unet", "loss=dice", "debug=fast"])
    print(summary["mean_dice"], summary["run_dir"])
    again = api.evaluate([f"ckpt_path={summary['run_dir']}/checkpoints/best.ckpt"])
    net = api.load_model(f"{summary['run_dir']}/checkpoints/best.ckpt")   # plain nn.Module, eval mode
    logits = net(torch.zeros(1, 1, 64, 64, 64))                           # preprocessed [B, C, *spatial]

Run folders are made as the CLI makes them (``hydra.run.dir=...`` chooses one). Multi-process DDP
(``trainer=ddp``) re-launches the calling script for every rank, as Lightning does for any script; use
the CLI for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ctbench.config import RunContext, compose_with_context

__all__ = ["compose", "evaluate", "load_model", "predict", "train"]


def compose(overrides: Sequence[str] = (), task: str = "train"):
    """The config ``ctbench TASK OVERRIDES`` would run with (an OmegaConf ``DictConfig``; ``${hydra:...}``
    references resolved, the rest as the CLI has it)."""
    return compose_with_context(task, overrides)[0]


def _run(task: str, overrides: Sequence[str], func: Callable[[Any, RunContext], Any]) -> tuple[Any, Path]:
    from ctbench.hydra_app import silence_known_warnings

    silence_known_warnings()
    cfg, ctx = compose_with_context(task, overrides)
    run_dir = ctx.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(run_dir=run_dir, choices=ctx.choices, overrides=ctx.overrides, run_dir_given=ctx.run_dir_given)
    handler = logging.FileHandler(run_dir / f"{task}.log")  # as the CLI's RUN_DIR/TASK.log
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        return func(cfg, ctx), run_dir
    finally:
        root.removeHandler(handler)
        handler.close()


def train(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """``ctbench train OVERRIDES``: the run report's summary (``report/summary.json``) plus ``run_dir``."""
    from ctbench.engine.run import train as train_task
    from ctbench.run_folder import read_summary

    summary, run_dir = _run("train", overrides, train_task)
    return {**(summary or read_summary(run_dir)), "run_dir": str(run_dir)}


def evaluate(overrides: Sequence[str]) -> dict[str, Any]:
    """``ctbench eval ckpt_path=... OVERRIDES``: the new report's summary plus ``run_dir``."""
    from ctbench.engine.run import evaluate as evaluate_task

    summary, run_dir = _run("eval", overrides, evaluate_task)
    return {**summary, "run_dir": str(run_dir)}


def predict(overrides: Sequence[str]) -> list[Path]:
    """``ctbench predict ckpt_path=... input=... output_dir=...``: the label-map files written."""
    from ctbench.engine.run import predict as predict_task

    return list(_run("predict", overrides, predict_task)[0])


def load_model(ckpt_path: str | Path):
    """The trained network of a ctbench checkpoint: a plain ``torch.nn.Module`` in eval mode taking the
    preprocessed ``[B, C, *spatial]`` tensor and returning logits. The checkpoint's config is checked
    like any file from elsewhere (:func:`ctbench.engine.allowlist.check_untrusted`)."""
    from ctbench.engine.checkpoint import model_from_checkpoint

    return model_from_checkpoint(ckpt_path)[0]
