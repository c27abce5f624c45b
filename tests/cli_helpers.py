"""Helpers shared by the tests: run the real `ctbench` command, read run reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


TINY = ["debug=fast", "progress_bar=false"]


def read_summary(run: Path) -> dict:
    return json.loads((run / "report" / "summary.json").read_text())
