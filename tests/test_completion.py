"""Shell completion: ``ctbench completion bash`` installs a function that completes commands, config
groups and their options from ``configs/`` (driven here in a real bash)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctbench.completion import candidates, for_shell
from ctbench.config import group_choices

BIN = str(Path(sys.executable).parent)


def test_candidates_follow_the_config_folders():
    assert candidates("ctbench tr") == ["train"]
    assert "completion" in candidates("ctbench ")
    assert candidates("ctbench train model=fcn") == ["model=fcn16s", "model=fcn32s", "model=fcn8s"]
    assert candidates("ctbench train logger=") == [f"logger={n}" for n in group_choices("logger")]
    assert {"model=", "loss=", "logger=", "callbacks=", "dims=", "seed="} <= set(candidates("ctbench train "))
    assert candidates("ctbench train model=nosuch") == []
    assert candidates("ctbench score ") == []  # argparse commands take paths: the shell completes files


def test_bash_word_breaks():
    # bash splits `model=att` at '=': the reply must be the part after it
    assert for_shell("ctbench train model=att") == ["attention_unet"]
    assert for_shell("ctbench train hydra/launcher=slurm_") == ["slurm_cpu"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_installed_function_completes_in_bash():
    script = (
        'eval "$(ctbench completion bash)"\n'
        'COMP_LINE="ctbench train model=deeplabv3"; COMP_POINT=${#COMP_LINE}; _ctbench_complete; '
        'echo "${COMPREPLY[*]}"\n'
        'COMP_LINE="ctbench ev"; COMP_POINT=${#COMP_LINE}; _ctbench_complete; echo "${COMPREPLY[*]}"\n'
    )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["deeplabv3 deeplabv3p", "eval"]
