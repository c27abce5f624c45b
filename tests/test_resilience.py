"""Runs that survive: SIGKILL at random moments + resume, SIGTERM, same seed -> same numbers,
unsafe checkpoints refused."""

from __future__ import annotations

import csv
import os
import pickle
import random
import signal
import subprocess
import time

import pytest
import torch

from ctbench.engine.safe_load import safe_load
from ctbench.errors import CTBenchError

from cli_helpers import CTBENCH, REPO, TINY, ctbench, read_summary


def _start(args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([CTBENCH, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(workdir):
    run = workdir / "outputs" / "killed"
    args = ["train", *TINY, "trainer.max_epochs=6", f"hydra.run.dir={run}", "resume=true"]
    rng = random.Random(0)
    for _ in range(3):
        proc = _start(args, workdir)
        time.sleep(rng.uniform(6.0, 14.0))  # start-up takes ~5 s: kills land in training, validation or saving
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        summary = run / "report" / "summary.json"
        assert not summary.exists() or read_summary(run)["status"] == "complete"
        for ckpt in (run / "checkpoints").glob("*.ckpt"):
            safe_load(ckpt)  # every checkpoint that exists is complete, whatever the kill interrupted
    ctbench(*args, cwd=workdir)
    summary = read_summary(run)
    assert summary["status"] == "complete" and summary["epochs"] >= 5
    assert "state_dict" in safe_load(run / "checkpoints" / "best.ckpt")


@pytest.mark.slow
def test_sigterm_saves_last_checkpoint_and_resume_finishes(workdir):
    run = workdir / "outputs" / "sigterm"
    # ~0.1 s an epoch on the tiny phantom: 300 epochs keep the signal well inside training
    args = ["train", *TINY, "trainer.max_epochs=300", "trainer.check_val_every_n_epoch=150", f"hydra.run.dir={run}"]
    proc = _start(args, workdir)
    deadline = time.time() + 120
    while not list((run / "tensorboard").glob("events.*")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(4.0)  # well inside training
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-6000:]
    assert "stopped by SIGTERM" in err and "resume=true" in err
    ckpt = safe_load(run / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] > 0
    # the line says what the saved file holds, whichever phase the signal hit
    assert f"holds epoch {ckpt['epoch']}, step {ckpt['global_step']}" in err, err[-2000:]
    ctbench(*args, "resume=true", cwd=workdir)
    assert read_summary(run)["epochs"] >= 299


#: two training batches per epoch (batch size 1): a SIGTERM after the first leaves a checkpoint inside the epoch
RESUMED = ["train", *TINY, "dims=2", "model=unet", "trainer.max_epochs=4", "trainer.check_val_every_n_epoch=3",
           "dataset.batch_size_2d=1", "+callbacks.stop._target_=interrupt_at_epoch.InterruptAtEpoch",
           "+callbacks.stop.epoch=2", "+callbacks.stop.batch=0"]


def _run_rows(run) -> list[dict[str, str]]:
    with (run / "report" / "per_case.csv").open(newline="") as fh:  # every column but a wall time
        return [{k: v for k, v in row.items() if k != "predict_seconds"} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def uninterrupted(workdir):
    run, marker = workdir / "outputs" / "uninterrupted", workdir / "never"
    marker.touch()  # the callback's marker exists: it never fires
    ctbench(*RESUMED, f"+callbacks.stop.marker={marker}", f"hydra.run.dir={run}", cwd=workdir)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "ctrl_c", "sigterm"])
def test_an_interrupted_run_resumes_to_the_same_weights_and_numbers(uninterrupted, workdir, how):
    """Epoch 2 interrupted before its first step: SIGKILL (``last.ckpt``: epoch 1's end) or Ctrl+C in the
    epoch's start hooks; or inside it: SIGTERM after its first of two batches (``last.ckpt`` at step 5).
    Resumed, the run trains the same patches with the same dropout as the run never interrupted:
    bit-identical weights. Before the checkpoint carried the random state, a resumed run replayed epoch 0's
    stream (weights off by ~5e-3); before SaveOnInterrupt kept the epoch-end checkpoint, the Ctrl+C run resumed
    one epoch short (3 of 4 steps); before the checkpoint carried the epoch's start state
    (``ReplayingLoader``), the SIGTERM run trained the epoch's second batch on a fresh draw (weights off by
    ~2e-3)."""
    run = workdir / "outputs" / f"resumed_after_{how}"
    args = [*RESUMED, f"+callbacks.stop.how={how}", f"+callbacks.stop.marker={workdir / how}",
            f"hydra.run.dir={run}", "resume=true"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "2",
           "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([CTBENCH, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == {"kill": -signal.SIGKILL, "ctrl_c": 130, "sigterm": 143}[how], proc.stderr[-3000:]
    saved = safe_load(run / "checkpoints" / "last.ckpt")
    assert (saved["epoch"], saved["global_step"]) == ((2, 5) if how == "sigterm" else (1, 4))
    ctbench(*args, cwd=workdir)
    straight, resumed = (safe_load(r / "checkpoints" / "last.ckpt") for r in (uninterrupted, run))
    assert straight["global_step"] == resumed["global_step"] > 0
    for key, weight in straight["state_dict"].items():
        assert torch.equal(weight, resumed["state_dict"][key]), key
    assert _run_rows(uninterrupted) == _run_rows(run)


@pytest.mark.slow
def test_same_seed_same_metrics(workdir):
    out = []
    for name in ("repro_a", "repro_b"):
        run = workdir / "outputs" / name
        ctbench("train", *TINY, "trainer.max_epochs=2", "seed=7", f"hydra.run.dir={run}", cwd=workdir)
        with (run / "report" / "per_case.csv").open(newline="") as fh:  # every column but a wall time
            out.append([{k: v for k, v in row.items() if k != "predict_seconds"} for row in csv.DictReader(fh)])
        assert read_summary(run)["seed"] == 7
    assert out[0] == out[1] and len(out[0]) > 0


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/ctbench_pwned",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    with path.open("wb") as fh:
        pickle.dump({"state_dict": {}, "x": _Evil()}, fh)
    with pytest.raises(CTBenchError, match="refusing to load"):
        safe_load(path)
    assert not os.path.exists("/tmp/ctbench_pwned")


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CTBenchError, match="truncated or not a PyTorch checkpoint"):
        safe_load(path)
