"""A report never describes another run, and a resumed run is the same run (issue: trust every file,
rows 3, 4, 8, 11 and DDP's half of 12)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ctbench.engine.resume import config_differences, fingerprint, resumable_checkpoint
from ctbench.engine.run import _guarded, _tested_checkpoint
from ctbench.errors import CTBenchError

from cli_helpers import CTBENCH, REPO, TINY, TRAINED_RUN, ctbench, read_summary


def _copy(run: Path, to: Path, keep_report: bool = False) -> Path:
    shutil.copytree(run, to)
    if not keep_report:
        shutil.rmtree(to / "report")
    return to


@pytest.mark.slow
def test_overwrite_clears_the_old_run_before_training(trained_run, workdir, tmp_path):
    run = _copy(trained_run, tmp_path / "run", keep_report=True)
    old_csv = (run / "report" / "per_case.csv").read_text()
    old_events = {p.name for p in (run / "tensorboard").glob("events.*")}
    # the new run never validates, so it has no best.ckpt of its own: the old one must not be tested
    ctbench("train", *TINY, "loss=dice", "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=5",
            "overwrite=true", f"hydra.run.dir={run}", cwd=workdir)
    summary = read_summary(run)
    assert summary["loss"] == "dice" and summary["checkpoint"] == "last.ckpt" and summary["checkpoint_epoch"] == 0
    assert not (run / "checkpoints" / "best.ckpt").exists()
    assert (run / "report" / "per_case.csv").read_text() != old_csv
    assert not old_events & {p.name for p in (run / "tensorboard").glob("events.*")}


def test_a_checkpoint_of_another_config_is_not_tested(trained_run):
    stored = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)["hyper_parameters"]["cfg"]
    same = SimpleNamespace(hparams={"cfg": stored})
    assert _tested_checkpoint(trained_run, same)[0].name == "best.ckpt"
    other = SimpleNamespace(hparams={"cfg": {**stored, "loss": {"_target_": "ctbench.losses.dice.DiceLoss"}}})
    with pytest.raises(CTBenchError, match="written by another run"):
        _tested_checkpoint(trained_run, other)


def test_resume_refuses_another_config_and_names_the_keys(trained_run, workdir, tmp_path):
    run = _copy(trained_run, tmp_path / "run")
    proc = ctbench("train", *TRAINED_RUN, "loss=dice", "optim.optimizer.lr=0.1", "resume=true",
                   f"hydra.run.dir={run}", cwd=workdir, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "loss._target_" in proc.stderr and "optim.optimizer.lr" in proc.stderr
    assert not (run / "report").exists()


def test_config_differences_ignore_what_may_change():
    a = {"trainer": {"max_epochs": 8, "devices": 1, "precision": 32}, "loss": {"w": 1}, "paths": {"log_dir": "a"}}
    b = {"trainer": {"max_epochs": 20, "devices": 2, "precision": 32}, "loss": {"w": 1}, "paths": {"log_dir": "b"}}
    assert config_differences(a, b) == [] and fingerprint(a) == fingerprint(b)
    c = {**b, "trainer": {**b["trainer"], "precision": "bf16-mixed"}}
    assert config_differences(a, c) == ["trainer.precision: 32 -> 'bf16-mixed'"]


def test_a_finished_run_counts_its_epochs_but_not_a_studys_bookkeeping():
    """Resuming may lengthen a run; a complete run of 60 epochs is not the 100-epoch run asked for, and a study
    run (its length is the preset's) is not lengthened on resume either. The study preset's own keys
    (``study.*``) act only through the keys they fill in: another network moving up an epoch tier stops
    neither the resumption nor the reuse of this one's run."""
    a = {"trainer": {"max_epochs": 60, "devices": 1}, "study": {"epochs_by_model": {"unet": 100}}, "paths": {"a": 1}}
    b = {"trainer": {"max_epochs": 100, "devices": 2}, "study": {"epochs_by_model": {"unet": 100, "segnet": 100}},
         "paths": {"a": 2}}
    assert config_differences(a, b) == ["trainer.max_epochs: 60 -> 100"]   # a study run, resumed
    assert config_differences(a, b, finished=True) == ["trainer.max_epochs: 60 -> 100"]
    same_length = {**b, "trainer": {"max_epochs": 60, "devices": 2}}
    assert config_differences(a, same_length) == config_differences(a, same_length, finished=True) == []
    # nor does a checkpoint become another run's: DynUNet seed 0, stopped at its last epoch while DRINet moved
    # up a tier, resumed, then refused to test its own best.ckpt (3 Dec)
    assert fingerprint(a) == fingerprint(same_length) != fingerprint({**a, "model": {"name": "unet"}})
    plain = {"trainer": {"max_epochs": 60, "devices": 1}, "model": {"name": "unet"}}   # not a study run
    longer = {"trainer": {"max_epochs": 100, "devices": 1}, "model": {"name": "unet"}}
    assert config_differences(plain, longer) == []
    assert config_differences(plain, longer, finished=True) == ["trainer.max_epochs: 60 -> 100"]
    assert config_differences(plain, {**longer, "model": {"name": "segnet"}}) == ["model.name: 'unet' -> 'segnet'"]


def test_resume_without_a_run_folder_gives_the_command(trained_run, tmp_path):
    earlier = _copy(trained_run, tmp_path / "outputs" / "unet-dice_ce-3d" / "2026-01-01_00-00-00")
    proc = ctbench("train", *TRAINED_RUN, "resume=true", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"hydra.run.dir={earlier.resolve()}" in proc.stderr or f"hydra.run.dir={earlier}" in proc.stderr
    proc = ctbench("train", *TRAINED_RUN, "seed=3", "resume=true", cwd=tmp_path, check=False)  # another config
    assert proc.returncode == 2 and "no run of this config" in proc.stderr


def test_hpc_checkpoint_from_sigusr1_is_resumed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(b"x")
    assert resumable_checkpoint(tmp_path) == last
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    hpc.write_bytes(b"x")
    os.utime(last, (time.time() - 60, time.time() - 60))
    assert resumable_checkpoint(tmp_path) == hpc


def test_sigterm_in_any_phase_ends_with_one_true_line(tmp_path):
    trainer = SimpleNamespace(current_epoch=3, global_step=12, interrupted=False)

    def stop():
        raise SIGTERMException()

    with pytest.raises(CTBenchError, match=r"stopped by SIGTERM during the test of best.ckpt at epoch 3, step 12; "
                                           r"no checkpoint was saved yet: rerun") as err:
        _guarded(stop, tmp_path, trainer, "the test of best.ckpt")
    assert err.value.exit_code == 143


@pytest.mark.slow
def test_ctrl_c_reaches_the_resume_hint(workdir):
    run = workdir / "outputs" / "sigint"
    args = ["train", *TINY, "trainer.max_epochs=300", "trainer.check_val_every_n_epoch=150", f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "2"}
    # a shell that starts the suite in the background (`pytest &`) ignores SIGINT, and a child inherits that:
    # give the command the disposition a terminal gives it
    proc = subprocess.Popen([CTBENCH, *args], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while not (run / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("ctbench: error: interrupted during training") and "resume=true" in line, line
    held = re.search(r"holds epoch (\d+), step (\d+)", line)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert held and (int(held[1]), int(held[2])) == (ckpt["epoch"], ckpt["global_step"]), line


def test_eval_on_an_msd_folder_resolves_its_classes(trained_run, workdir, tmp_path):
    root = workdir / "data" / "synthetic_tiny"  # the phantom is written in MSD layout (dataset.json)
    run = tmp_path / "eval"
    ctbench("eval", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", "dataset=msd", f"dataset.root={root}",
            "dataset.test_cases=2", "dataset.num_folds=2", "dataset.preprocessing.spacing=[10,10,10]",
            "dataset.patch_size_3d=[16,16,16]", "progress_bar=false", f"hydra.run.dir={run}", cwd=workdir)
    summary = read_summary(run)
    assert summary["n_cases"] == 2 and set(summary["per_class"]) == {"liver", "spleen", "kidney", "lesion"}


@pytest.mark.slow
def test_ddp_ranks_skip_a_non_finite_step_together(workdir):
    """Rank 1's loss is NaN at its first step, rank 0's is finite: both must skip (and the run finish)."""
    run = workdir / "outputs" / "nonfinite_under_ddp"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([CTBENCH, "train", *TINY, "trainer=ddp_cpu", "trainer.max_epochs=1", "nonfinite=skip",
                           "loss._target_=nan_on_rank_one.NaNOnRankOneLoss", f"hydra.run.dir={run}"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipping step 0: the loss of another process became NaN/Inf" in proc.stdout + proc.stderr
    assert "terminate called" not in proc.stderr  # every rank left its gloo group before exiting
    assert read_summary(run)["status"] == "complete"
