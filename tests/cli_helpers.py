"""Helpers shared by the tests: run the `ctbench` command (in this process or as the console script), read run
reports."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CTBENCH = str(Path(sys.executable).with_name("ctbench"))  # the installed console script, as users run it

#: the environment every command runs with (a wide terminal so that tables are not wrapped)
COMMAND_ENV = {"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "2", "COLUMNS": "250"}

#: ``CTBENCH_TESTS_SUBPROCESS=1`` runs every :func:`ctbench` call as the console script (slower: a check
#: that running in-process hides nothing)
ALWAYS_SUBPROCESS = os.environ.get("CTBENCH_TESTS_SUBPROCESS") == "1"


def ctbench(*args: str, cwd: Path, timeout: float = 600, check: bool = True,
            separate_process: bool = False) -> subprocess.CompletedProcess:
    """Run ``ctbench ARGS`` from ``cwd`` and return its exit code, stdout and stderr.

    By default the command runs in this process through :func:`ctbench.cli.main`, the function the console
    script calls: the same code path without a Python start-up and a torch/Lightning import per call (about
    5 s of CPU each on this 2-core machine). ``separate_process=True`` runs the real console script in a
    subprocess, as a user would: for tests of the process itself (signals, DDP ranks, what is imported) and
    a few smoke tests of the installed script. ``timeout`` applies to subprocesses only.
    """
    if separate_process or ALWAYS_SUBPROCESS:
        proc = subprocess.run([CTBENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **COMMAND_ENV})
    else:
        proc = _in_process(list(args), cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"ctbench {' '.join(args)} exited {proc.returncode}\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``ctbench.cli.main(args)`` with the process state a fresh console script starts from, restored
    afterwards: working folder, ``sys.argv``, environment, root logging handlers, torch's thread count and
    determinism flag, Hydra's global state and the sweep's failed-job list. An exception that would end the
    script with a traceback gives exit code 1 and the traceback on stderr, as Python does."""
    import torch
    from hydra.core.global_hydra import GlobalHydra

    from ctbench import sweep_status
    from ctbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_cwd, saved_argv, saved_env = os.getcwd(), list(sys.argv), dict(os.environ)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    sweep_status.failed_jobs.clear()
    os.environ.update(COMMAND_ENV)
    os.chdir(cwd)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exit_:
                if exit_.code is None or isinstance(exit_.code, int):
                    code = exit_.code or 0
                else:  # sys.exit("message"): Python prints the message and exits 1
                    print(exit_.code, file=sys.stderr)
                    code = 1
            except Exception:  # noqa: BLE001 - what the interpreter does with an uncaught exception
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        for handler in set(root.handlers) - set(saved_handlers):
            handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        GlobalHydra.instance().clear()
        sweep_status.failed_jobs.clear()
    return subprocess.CompletedProcess([CTBENCH, *args], code, out.getvalue(), err.getvalue())


TINY = ["debug=fast", "progress_bar=false"]

#: the overrides of the session's trained run (``trained_run`` in conftest.py; tests resuming it repeat them)
TRAINED_RUN = [*TINY, "trainer.max_epochs=8", "trainer.check_val_every_n_epoch=2", "dataset.phantom.cases=8"]


def read_summary(run: Path) -> dict:
    return json.loads((run / "report" / "summary.json").read_text())
