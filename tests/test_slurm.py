"""Sweeps through a real SLURM cluster (hydra/launcher=slurm_cpu, hydra-submitit-launcher): nothing mocked.

Needs `sbatch` and a running cluster: `scripts/slurm_local.sh up` brings one up on this machine (root,
Debian's slurm-wlm + munge). Skipped with the reason otherwise. Job timings are printed (`pytest -s`) and
written to SWEEP_DIR/turnaround.json.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from cli_helpers import CTBENCH, TINY, read_summary

pytestmark = pytest.mark.slurm

SLURM_STATE = Path(os.environ.get("CTBENCH_SLURM_STATE", "/tmp/ctbench-slurm"))


def _cluster_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "no `sbatch` on PATH: install SLURM and run scripts/slurm_local.sh up"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as err:
        return f"sinfo failed ({err}): run scripts/slurm_local.sh up"
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mix", "alloc", "comp") for s in states):
        return (f"SLURM cluster is not up (sinfo: {(proc.stdout + proc.stderr).strip()[:200] or 'no nodes'}): "
                "run scripts/slurm_local.sh up")
    return None


@pytest.fixture(scope="module", autouse=True)
def _cluster_up() -> None:
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)


def _env() -> dict[str, str]:
    """The submitter's environment (jobs inherit it); the sacct stand-in first when slurm_local.sh made one."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    if (SLURM_STATE / "bin" / "sacct").is_file():
        env["PATH"] = f"{SLURM_STATE / 'bin'}{os.pathsep}{env['PATH']}"
    return env


def _ctbench(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([CTBENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env())
    if proc.returncode != 0:
        raise AssertionError(f"ctbench {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def _array_id(sweep: Path) -> str:
    ids = sorted({p.name.split("_")[0] for p in (sweep / ".submitit").iterdir() if p.is_dir()}, key=int)
    assert ids, f"no submitit job folders in {sweep / '.submitit'}"
    return ids[-1]


def _job_times(job: str, wait: float = 60) -> list[dict[str, str]]:
    """Submit, start and end time of every task of an array job, from slurmctld (MinJobAge keeps them).

    submitit returns as soon as a task has written its result; the task itself ends a moment later."""
    deadline = time.time() + wait
    while True:
        out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%i|%T|%V|%S|%e"], capture_output=True,
                             text=True, timeout=10).stdout
        rows = []
        for line in out.splitlines():
            task, state, submit, start, end = line.split("|")
            rows.append({"task": task, "state": state, "submit": submit, "start": start, "end": end})
        if rows and all(r["state"] not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") for r in rows):
            return rows
        if time.time() > deadline:
            return rows
        time.sleep(0.5)


def _seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def _logs(sweep: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted((sweep / ".submitit").rglob("*_log.*")))


@pytest.fixture(scope="module")
def slurm_sweep(workdir: Path) -> dict:
    sweep = workdir / "multirun" / f"slurm_{os.getpid()}_{int(time.time())}"  # fresh: job ids restart with the cluster
    args = ["train", "-m", "hydra/launcher=slurm_cpu", *TINY, "loss=dice,ce", "trainer=cpu", "trainer.max_epochs=2",
            f"hydra.sweep.dir={sweep}"]
    start = time.perf_counter()
    proc = _ctbench(*args, cwd=workdir)
    wall = time.perf_counter() - start
    array = _array_id(sweep)
    tasks = _job_times(array)
    timing = {"command_seconds": round(wall, 1), "array_job": array, "tasks": []}
    for t in tasks:
        timing["tasks"].append({**t, "queue_seconds": _seconds(t["submit"], t["start"]),
                                "turnaround_seconds": _seconds(t["submit"], t["end"])})
    (sweep / "turnaround.json").write_text(json.dumps(timing, indent=2))
    print(f"\nSLURM sweep of 2 jobs: command {wall:.1f} s; " + "; ".join(
        f"{t['task']}: queued {t['queue_seconds']:.0f} s, submit->end {t['turnaround_seconds']:.0f} s"
        for t in timing["tasks"]))
    return {"sweep": sweep, "args": args, "proc": proc, "timing": timing}


def test_two_job_sweep_runs_as_one_array_job(slurm_sweep):
    sweep = slurm_sweep["sweep"]
    tasks = slurm_sweep["timing"]["tasks"]
    assert len(tasks) == 2 and all(t["state"] == "COMPLETED" for t in tasks), tasks
    assert all(t["queue_seconds"] <= 30 for t in tasks), tasks  # both start at once: 2 CPUs, 1 CPU per job
    script = next((sweep / ".submitit").rglob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-1" in script and "#SBATCH --ntasks-per-node=1" in script
    assert "--gpus" not in script and "#SBATCH --cpus-per-task=1" in script
    logs = _logs(sweep)
    assert "SLURM auto-requeueing enabled" in logs  # Lightning ran under its SLURMEnvironment


def test_both_reports_and_the_comparison_table(slurm_sweep, workdir):
    sweep = slurm_sweep["sweep"]
    for loss in ("dice", "ce"):
        summary = read_summary(sweep / f"unet-{loss}-3d-seed42-fold0")
        assert summary["status"] == "complete" and summary["loss"] == loss and summary["epochs"] >= 1
    proc = _ctbench("report", str(sweep), cwd=workdir)
    with (sweep / "comparison.csv").open(newline="") as fh:
        rows = {(r["model"], r["loss"]): r for r in csv.DictReader(fh)}
    assert set(rows) == {("unet", "dice"), ("unet", "ce")}
    assert (sweep / "comparison.md").is_file() and "unet" in proc.stdout


def test_resubmitting_the_same_sweep_skips_both_jobs(slurm_sweep, workdir):
    sweep = slurm_sweep["sweep"]
    mtimes = {p: p.stat().st_mtime_ns for p in sweep.glob("*/report/summary.json")}
    _ctbench(*slurm_sweep["args"], cwd=workdir)
    assert _logs(sweep).count("already holds a complete report") == 2
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items()) and len(mtimes) == 2


def test_a_failed_slurm_job_is_named_and_the_sweep_exits_1(slurm_sweep, workdir):
    """The failed jobs ran on SLURM; the launching process reads their folders and exits 1."""
    args = [*slurm_sweep["args"], "fold=0,9"]
    proc = subprocess.run([CTBENCH, *args], cwd=workdir, capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 1, proc.stderr[-3000:]
    failed = sorted(line.split()[3] for line in proc.stderr.splitlines() if line.startswith("ctbench: sweep job "))
    assert failed == ["unet-ce-3d-seed42-fold9", "unet-dice-3d-seed42-fold9"], proc.stderr[-3000:]
    assert "fold=9 is out of range" in proc.stderr and "2 of 4 job(s) failed" in proc.stderr


def test_preempted_job_is_requeued_and_resumes_from_last_ckpt(workdir):
    """SLURM's preemption/time-limit warning (USR2, what `--signal=USR2@signal_delay_s` sends) makes submitit
    requeue the job; the requeued job finds checkpoints/last.ckpt and resumes instead of starting again."""
    sweep = workdir / "multirun" / f"slurm_requeue_{os.getpid()}_{int(time.time())}"
    run = sweep / "unet-dice-3d-seed42-fold0"
    args = ["train", "-m", "hydra/launcher=slurm_cpu", *TINY, "loss=dice", "trainer=cpu", "trainer.max_epochs=30",
            "trainer.check_val_every_n_epoch=30", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen([CTBENCH, *args], cwd=workdir, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 300
        while not (run / "checkpoints" / "last.ckpt").exists():
            assert proc.poll() is None and time.time() < deadline, "job ended or never saved a checkpoint"
            time.sleep(0.5)
        time.sleep(1.0)
        job = next(p.name for p in (sweep / ".submitit").iterdir() if p.is_dir())  # one job: no array index
        subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=10)  # = SLURM's preemption warning
        # SLURM holds a requeued job back (BeginTime about 2 min ahead); let it start at once to keep the test short
        while proc.poll() is None and time.time() < deadline:
            state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T|%r"], capture_output=True, text=True,
                                   timeout=10).stdout.strip()
            if state.startswith("PENDING"):
                subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=10)
                break
            time.sleep(0.5)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    assert proc.returncode == 0, out[-3000:]
    logs = _logs(sweep)
    assert "this job is preempted" in logs and "Requeued job" in logs and "remaining timeouts" in logs, logs[-3000:]
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'}" in logs, logs[-3000:]
    summary = read_summary(run)
    assert summary["status"] == "complete" and summary["epochs"] >= 29


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-s", "-q"]))
