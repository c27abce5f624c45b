"""Config groups users of lightning-hydra-template expect: ``logger=`` (tensorboard, csv, mlflow, wandb,
none, lists), ``callbacks=`` (default, early_stopping, none), schedulers named by ``_target_``; and the
one composition path (:func:`ctbench.config.compose`) that the CLI, the API and the scripts share."""

from __future__ import annotations

import csv

import pytest
import torch

from ctbench.config import compose, compose_with_context
from ctbench.engine.build import build_callbacks, build_loggers
from ctbench.engine.components import instantiate
from ctbench.errors import CTBenchError

from cli_helpers import TINY, ctbench, read_summary


def test_compose_is_the_cli_config():
    cfg, ctx = compose_with_context("train", ["model=vnet", "loss=dice", "hydra.run.dir=/tmp/x"])
    assert cfg.model._target_ == "ctbench.models.vnet.VNet" and ctx.choices["loss"] == "dice"
    assert str(ctx.run_dir) == "/tmp/x" and ctx.run_dir_given and "hydra" not in cfg
    with pytest.raises(CTBenchError, match="unknown model 'vnett'"):
        compose("train", ["model=vnett"])
    with pytest.raises(CTBenchError, match="unknown key 'no_such_key'"):
        compose("train", ["no_such_key=1"])


def test_logger_lists_and_none(tmp_path):
    cfg = compose("train", ["logger=[csv,tensorboard]"])
    names = sorted(type(lg).__name__ for lg in build_loggers(cfg, tmp_path))
    assert names == ["CSVLogger", "TensorBoardLogger"]
    assert build_loggers(compose("train", ["logger=none"]), tmp_path) == []


def test_callbacks_group(tmp_path):
    def kinds(choice: str) -> set[str]:
        return {type(c).__name__ for c in build_callbacks(compose("train", [f"callbacks={choice}"]), tmp_path)}

    always = {"ModelCheckpoint", "SaveOnInterrupt", "SigtermOnEveryRank", "RichProgressBar"}
    assert kinds("none") == always
    assert kinds("default") == always | {"LearningRateMonitor"}
    assert kinds("early_stopping") == always | {"LearningRateMonitor", "EarlyStopping"}


def test_scheduler_by_target_and_unknown_target_is_one_line():
    cfg = compose("train", ["optim=sgd_poly"])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = instantiate(cfg.optim.scheduler, "optim.scheduler")(opt, total_steps=10)
    assert [round(sched.factor(s), 6) for s in (0, 5, 10)] == [1.0, round(0.5 ** 0.9, 6), 0.0]
    cos = instantiate(compose("train").optim.scheduler, "optim.scheduler")(opt, total_steps=120)
    assert cos.factor(9) == pytest.approx(0.5) and cos.factor(120) == pytest.approx(0.02)  # warm-up 20, floor


def test_unknown_scheduler_target_fails_with_one_line(tmp_path):
    proc = ctbench("train", *TINY, "optim.scheduler._target_=torch.optim.lr_scheduler.CosinLR",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        proc.stderr.strip().splitlines()[-1]] and "optim.scheduler._target_" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_loss_error_inside_instantiate_keeps_its_line(tmp_path):
    # a loss's own check raised inside Hydra's instantiate reaches the user as its one line
    proc = ctbench("train", *TINY, "loss=tversky", "loss.alpha=-1", f"hydra.run.dir={tmp_path / 'r'}",
                   cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "ctbench: error: loss 'tversky': alpha=-1, beta=0.7 must be >= 0"
    # an argument the class does not take: one line naming the block, the class and the key
    proc = ctbench("train", *TINY, "loss=tversky", "+loss.alphaa=0.3", f"hydra.run.dir={tmp_path / 'q'}",
                   cwd=tmp_path, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot build loss 'ctbench.losses.tversky.TverskyLoss'" in proc.stderr and "'alphaa'" in proc.stderr


@pytest.mark.slow
def test_csv_and_mlflow_loggers_write_what_their_tools_read(workdir, monkeypatch):
    run = workdir / "outputs" / "loggers"
    ctbench("train", *TINY, "logger=[csv,mlflow]", "trainer.max_epochs=2", f"hydra.run.dir={run}", cwd=workdir)
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    assert any(r.get("val/mean_dice") for r in rows) and any(r.get("train/loss_step") for r in rows)

    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as configs/logger/mlflow.yaml sets it for runs
    store = workdir / "outputs" / "mlruns"
    client = MlflowClient(tracking_uri=f"file:{store}")
    experiment = client.get_experiment_by_name("ctbench")
    runs = client.search_runs([experiment.experiment_id])
    assert runs and runs[0].info.run_name == "unet-dice_ce-3d"
    assert "val/mean_dice" in runs[0].data.metrics
    assert read_summary(run)["status"] == "complete"


@pytest.mark.slow
def test_early_stopping_stops_the_run(workdir):
    run = workdir / "outputs" / "early"
    ctbench("train", *TINY, "callbacks=early_stopping", "callbacks.early_stopping.patience=1",
            "callbacks.early_stopping.min_delta=10", "trainer.max_epochs=40", "trainer.check_val_every_n_epoch=1",
            f"hydra.run.dir={run}", cwd=workdir)
    epochs = read_summary(run)["epochs"]
    assert epochs < 10, epochs  # patience 1 with an unreachable min_delta: stops after the 2nd validation
