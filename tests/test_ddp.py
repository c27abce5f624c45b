"""Two real CPU processes (gloo): metrics equal the single-process ones, every case counted once,
one run directory, reports written by rank 0 only."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time

import pytest
import torch

from ctbench.engine.safe_load import safe_load

from cli_helpers import CTBENCH, REPO, TINY, ctbench, read_summary


@pytest.mark.slow
def test_ddp_cpu_matches_single_process(workdir):
    run = workdir / "outputs" / "ddp"
    common = ["dataset.phantom.cases=9", "dataset.test_cases=3", "dataset.root=${paths.data_dir}/synthetic_ddp"]
    # two processes started by Lightning from the command line: the console script, not this test process
    ctbench("train", *TINY, "trainer=ddp_cpu", *common, f"hydra.run.dir={run}", cwd=workdir, separate_process=True)
    ddp = read_summary(run)
    assert ddp["n_cases"] == 3  # 3 cases on 2 ranks: the sampler pads one, the report counts it once
    rows = list(csv.DictReader((run / "report" / "per_case.csv").open()))
    assert len(rows) == 3 * 4 and len({(r["case"], r["class"]) for r in rows}) == len(rows)
    assert not list(workdir.glob("outputs/*/.pl_hydra*")) and len(list((workdir / "outputs").glob("ddp*"))) == 1
    # each rank drew its own crops and flips, and the checkpoint holds both streams for a resume
    saved = safe_load(run / "checkpoints" / "last.ckpt")["CTDataModule"]["random_state_by_rank"]
    assert len(saved) == 2 and not torch.equal(saved[0]["torch"], saved[1]["torch"])
    assert not any(torch.equal(a[1], b[1]) for a, b in zip(saved[0]["transforms"], saved[1]["transforms"],
                                                           strict=True))

    single = workdir / "outputs" / "ddp_eval"
    ctbench("eval", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "trainer=cpu", *TINY, *common,
            f"hydra.run.dir={single}", cwd=workdir)
    again = read_summary(single)
    assert again["n_cases"] == 3
    assert again["mean_dice"] == pytest.approx(ddp["mean_dice"], abs=1e-9)
    for name, metrics in ddp["per_class"].items():
        assert again["per_class"][name]["dice"] == pytest.approx(metrics["dice"], abs=1e-9)


RESUMED = ["train", *TINY, "trainer=ddp_cpu", "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=3",
           "dataset.phantom.cases=9", "dataset.test_cases=3", "dataset.root=${paths.data_dir}/synthetic_ddp",
           "+callbacks.stop._target_=interrupt_at_epoch.InterruptAtEpoch", "+callbacks.stop.epoch=2",
           "+callbacks.stop.how=ctrl_c"]


@pytest.mark.slow
def test_an_interrupted_ddp_run_resumes_every_rank_to_the_same_weights(workdir):
    """Ctrl+C on both ranks at epoch 2's start; resumed, each rank continues its own stream (rank 1 its own
    crops, not rank 0's): the weights equal those of the run never interrupted, bit for bit."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    straight, run = workdir / "outputs" / "ddp_straight", workdir / "outputs" / "ddp_resumed"
    never = workdir / "ddp_never"
    for rank in (0, 1):
        never.with_name(f"{never.name}.rank{rank}").touch()
    done = subprocess.run([CTBENCH, *RESUMED, f"+callbacks.stop.marker={never}", f"hydra.run.dir={straight}"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    args = [*RESUMED, f"+callbacks.stop.marker={workdir / 'ddp_stop'}", f"hydra.run.dir={run}", "resume=true"]
    stopped = subprocess.run([CTBENCH, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert safe_load(run / "checkpoints" / "last.ckpt")["epoch"] == 1
    resumed = subprocess.run([CTBENCH, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "restarts from the seed" not in resumed.stdout + resumed.stderr
    a, b = (safe_load(r / "checkpoints" / "last.ckpt") for r in (straight, run))
    assert a["global_step"] == b["global_step"] > 0
    for key, weight in a["state_dict"].items():
        assert torch.equal(weight, b["state_dict"][key]), key


def _rank1(launcher: int) -> int | None:
    """The pid of rank 1, a child of rank 0 (Lightning's subprocess launcher) with ``LOCAL_RANK=1``."""
    children = subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True, text=True).stdout.split()
    for pid in children:
        try:
            if b"LOCAL_RANK=1" in open(f"/proc/{pid}/environ", "rb").read().split(b"\0"):
                return int(pid)
        except OSError:
            continue
    return None


@pytest.mark.slow
@pytest.mark.parametrize("to", ["rank1", "both"])
def test_a_sigterm_to_rank_1_or_to_every_rank_stops_both_ranks_and_resumes(workdir, to):
    """SIGTERM to rank 1 alone, or to both ranks at once (``scancel``): both stop within 2 minutes (about 2 s
    measured) with exit 143 and the resumable ``last.ckpt`` the line names, and ``resume=true`` finishes. Before
    :class:`~ctbench.engine.callbacks.SigtermOnEveryRank`, Lightning 2.6.6's handler hung both ranks in these
    two cases (a collective inside the signal handler that the other rank never joined)."""
    run = workdir / "outputs" / f"ddp_sigterm_{to}"
    args = ["train", *TINY, "trainer=ddp_cpu", "trainer.max_epochs=300", "trainer.check_val_every_n_epoch=150",
            "dataset.phantom.cases=9", "dataset.test_cases=3", "dataset.root=${paths.data_dir}/synthetic_ddp",
            f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([CTBENCH, *args], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 300
    while not list((run / "tensorboard").glob("events.*")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(4.0)  # well inside training (300 epochs of 2 steps)
    rank1 = _rank1(proc.pid)
    assert rank1 is not None
    for pid in [rank1] if to == "rank1" else [proc.pid, rank1]:
        os.kill(pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        for pid in (proc.pid, rank1):
            os.kill(pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"SIGTERM to {to}: the ranks hung")
    assert proc.returncode == 143, err[-4000:]
    ckpt = safe_load(run / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] > 0
    assert f"holds epoch {ckpt['epoch']}, step {ckpt['global_step']}" in err, err[-2000:]
    ctbench(*args, "trainer.max_epochs=" + str(ckpt["epoch"] + 2), "resume=true", cwd=workdir,
            separate_process=True)
    assert read_summary(run)["status"] == "complete"


@pytest.mark.slow
def test_ddp_ranks_each_draw_their_share_of_volumes_per_epoch(workdir):
    """``dataset.volumes_per_epoch=6`` on 2 ranks, one volume a batch: 3 steps a rank an epoch. Lightning must
    leave the sampler (:class:`~ctbench.data.datamodule.VolumeDraws`, a one-replica ``DistributedSampler``) in
    place: wrapped in its distributed sampler, each rank would take every other draw (2 steps)."""
    run = workdir / "outputs" / "ddp_draws"
    ctbench("train", *TINY, "trainer=ddp_cpu", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=2",
            "dataset.phantom.cases=9", "dataset.test_cases=3", "dataset.root=${paths.data_dir}/synthetic_ddp",
            "dataset.volumes_per_epoch=6", "dataset.batch_size_3d=2", "dataset.samples_per_volume=2",
            f"hydra.run.dir={run}", cwd=workdir, separate_process=True)
    ckpt = safe_load(run / "checkpoints" / "last.ckpt")
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 2 * 3
