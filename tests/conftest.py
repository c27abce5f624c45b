"""Shared fixtures: a tiny phantom and one tiny trained run, made once per test session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CTBENCH = str(Path(sys.executable).with_name("ctbench"))  # the installed console script, as users run it


def ctbench(*args: str, cwd: Path, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real ``ctbench`` command in a subprocess (as a user would)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "2", "COLUMNS": "250"}
    proc = subprocess.run([CTBENCH, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"ctbench {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ctbench")


TINY = ["debug=fast", "progress_bar=false"]


@pytest.fixture(scope="session")
def trained_run(workdir: Path) -> Path:
    """A 3D U-Net trained for a few epochs on the tiny phantom; returns its run directory."""
    run = workdir / "outputs" / "tiny"
    ctbench("train", *TINY, "trainer.max_epochs=8", "trainer.check_val_every_n_epoch=2", "dataset.phantom.cases=8",
            f"hydra.run.dir={run}", cwd=workdir)
    return run


def read_summary(run: Path) -> dict:
    return json.loads((run / "report" / "summary.json").read_text())
