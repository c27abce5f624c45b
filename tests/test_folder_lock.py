"""One process at a time in a run folder (:mod:`ctbench.folder_lock`): a second ``ctbench train`` in a folder
another process is training in is refused and touches nothing there; a killed holder leaves no stale lock; a
study does not start a job another process is running."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctbench import folder_lock, study

from cli_helpers import TRAINED_RUN, ctbench

HOLD = "import os, fcntl, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); " \
       "print('held', flush=True); time.sleep(600)"


@pytest.fixture
def holder(tmp_path):
    """Another process holding ``tmp_path/run``'s lock (as a running ``ctbench train`` does) until killed."""
    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield run, proc
    proc.kill()
    proc.wait()


def test_a_folder_held_by_another_process_is_in_use_until_that_process_is_killed(holder):
    run, proc = holder
    assert folder_lock.in_use(run) and not folder_lock.in_use(run.parent) and not folder_lock.in_use(run / "nope")
    with pytest.raises(folder_lock.FolderBusy, match=f"{run} is in use by another ctbench process") as err:
        with folder_lock.exclusive(run):
            pytest.fail("the block runs only with the lock")
    assert err.value.exit_code == 2
    proc.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
    proc.wait()
    assert not folder_lock.in_use(run)
    with folder_lock.exclusive(run):
        assert folder_lock.in_use(run)  # a second descriptor, even in this process, is another holder
    assert not folder_lock.in_use(run)


def test_a_second_train_in_a_folder_being_trained_is_refused_and_touches_nothing(holder, workdir):
    """The folder holds only what a run that has just started has written (Hydra's files, its config): the
    refused command neither trains there nor removes the folder as a refused run's own."""
    run, _ = holder
    (run / "resolved_config.yaml").write_text("model: {}\n")
    proc = ctbench("train", *TRAINED_RUN, "resume=true", f"hydra.run.dir={run}", cwd=workdir, check=False)
    assert proc.returncode == 2 and "is in use by another ctbench process" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert (run / "resolved_config.yaml").read_text() == "model: {}\n"
    assert not (run / "checkpoints").exists() and not (run / "provenance.json").exists()


def test_a_study_does_not_start_a_job_another_process_is_running(holder, tmp_path, monkeypatch, capsys):
    """The held job and the job waiting for it are ``busy``, not run and not recorded; a job beside them runs."""
    run, _ = holder
    monkeypatch.chdir(tmp_path)
    started: list[str] = []

    def spawn(cmd, env, log_file):
        folder = Path(next(a for a in cmd if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        started.append(folder.name)
        (folder / "report").mkdir(parents=True)
        (folder / "report" / "summary.json").write_text(json.dumps({"status": "complete"}))
        return 0, 1.0

    monkeypatch.setattr(study, "spawn", spawn)
    jobs = [study.Job("run", "train", ["x=1"], run), study.Job("after", "train", ["x=2"], tmp_path / "after",
                                                               after=[run]),
            study.Job("beside", "train", ["x=3"], tmp_path / "beside")]
    study.run_jobs(jobs, 1, False, tmp_path, tmp_path / "logs")
    assert started == ["beside"] and [j.status for j in jobs] == ["busy", "busy", "done"]
    assert set(json.loads((tmp_path / "study_jobs.json").read_text())) == {str(tmp_path / "beside")}
    out = capsys.readouterr().out
    assert "run: not run, another process is running it now" in out
    assert "after: not run, a job it needs is running in another process" in out
    note, _, _ = study.what_is_left(jobs[0], jobs, {}, tmp_path / "logs")
    assert note.startswith("running in another process now")


def test_waiting_waits_for_the_holder(holder):
    """``waiting`` (a study's read-modify-write of study_jobs.json) blocks until the other holder ends."""
    run, proc = holder
    start = time.monotonic()
    killer = subprocess.Popen([sys.executable, "-c", "import time, os, signal; time.sleep(1); "
                               f"os.kill({proc.pid}, signal.SIGKILL)"])
    with folder_lock.waiting(run):
        assert time.monotonic() - start >= 0.9
    killer.wait()


def test_a_forked_worker_does_not_keep_the_lock(tmp_path):
    """A DataLoader worker forked inside the block (it outlives the block here) does not hold the folder: the lock
    ends with the block."""
    import multiprocessing

    run = tmp_path / "run"
    with folder_lock.exclusive(run):
        worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
        worker.start()
    try:
        deadline = time.monotonic() + 10  # the child closes its copy when it runs, just after the fork
        while folder_lock.in_use(run) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.is_alive() and not folder_lock.in_use(run)
    finally:
        worker.kill()
        worker.join()
