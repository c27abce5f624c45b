"""The README walked as a first-time user would (issue 25): every fenced ``ctbench`` command that runs on a CPU in
seconds runs, in README order, from one fresh folder, with ``debug=fast`` added where it trains, and exits as the
README says. Every other fenced command is in :data:`SKIPPED` with its reason, so a new README command must be
classified here. Placeholders (``/exports/hospital_dump``, ``outputs/.../checkpoints/best.ckpt``) become the
real series of ``tests/data/real/`` and the checkpoint the walk's own first command trained."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from cli_helpers import CTBENCH, REPO

REAL = REPO / "tests" / "data" / "real"
pytestmark = pytest.mark.slow

#: fenced commands the walk does not run, with the reason (prefix match)
SKIPPED = {
    "ctbench train -m model=unet,pspnet,fcdensenet": "a 9-job sweep: minutes of CPU (tests/test_sweeps.py runs sweeps)",
    "ctbench train -m experiment=survey_grid hydra/launcher=slurm": "needs SLURM (tests/test_slurm.py, slurm marker)",
    "ctbench report multirun/2026-12-01/10-00-00": "the folder of the skipped sweep above",
    "ctbench train mo<TAB>": "shell completion keystrokes (tests/test_completion.py)",
    "ctbench train model=deeplab<TAB>": "shell completion keystrokes (tests/test_completion.py)",
    "ctbench train -m model=unet,segnet": "a 4-job sweep: minutes of CPU (tests/test_sweeps.py)",
    "ctbench train -m experiment=survey_grid_cpu": "16 jobs x 40 epochs: 5 minutes on this CPU",
    "ctbench train trainer=ddp trainer.devices=8": "needs 8 GPUs",
    "ctbench report multirun/survey_grid_cpu": "the folder of the skipped survey_grid_cpu sweep",
    "ctbench study run": "the survey study: hours of CPU",
    "ctbench study report": "reads the study's runs (skipped above)",
}

#: README placeholder -> what the walk uses (``{ckpt}``/``{last}``: best/last checkpoint of the walk's first training run)
PLACEHOLDERS = {
    "/exports/hospital_dump": "hospital_dump",
    "/exports/one_series/": "one_series/",
    "outputs/.../checkpoints/best.ckpt": "{ckpt}",
    "ckpt_path=...": "ckpt_path={ckpt}",
    "fold0/best.ckpt": "{ckpt}",
    "fold1/best.ckpt": "{last}",       # the same run's last.ckpt: a second, distinct member
    "input=cts/": "input=nifti/",
}

#: commands that end with one line and a non-zero exit, as the README says they do without the user's data:
#: command prefix -> (exit code, words of the line)
REFUSED = {
    "ctbench check-data dataset=msd dataset.root=/data/Task03_Liver": (1, "dataset.root=/data/Task03_Liver"),
    "ctbench train dataset=msd dataset.root=/data/Task03_Liver": (1, "dataset.root=/data/Task03_Liver"),
    "ctbench train dataset=msd_liver": (1, "dataset.root=data/Task03_Liver is not a folder"),
    "ctbench train dataset=nifti": (1, "no image matches dataset.images='/ct/*.nii.gz'"),
}


def readme_commands() -> list[str]:
    """Every ``ctbench`` command of the README's fenced blocks, continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line.strip())
            line = line.removeprefix('eval "$(').removesuffix(')"')  # eval "$(ctbench completion bash)"
            if line.startswith("ctbench "):
                commands.append(" ".join(line.split()))
    return commands


def _skip_reason(command: str) -> str | None:
    return next((reason for prefix, reason in SKIPPED.items() if command.startswith(prefix)), None)


def test_every_readme_command_is_run_or_skipped_with_a_reason() -> None:
    commands = readme_commands()
    assert len(commands) > 20
    for prefix in [*SKIPPED, *REFUSED]:
        assert any(c.startswith(prefix) for c in commands), f"{prefix!r} is no longer in the README: drop it here"


def test_walk_the_readme(tmp_path: Path) -> None:
    work = tmp_path / "fresh"
    work.mkdir()
    shutil.copytree(REAL / "pydicom-ct-tiny", work / "hospital_dump")
    shutil.copytree(REAL / "dcmqi-ct-3slice-liver" / "dicom", work / "one_series")
    env = {**os.environ, "OMP_NUM_THREADS": "2", "COLUMNS": "80", "PYTHONWARNINGS": "ignore"}
    ran = []
    for command in readme_commands():
        if _skip_reason(command):
            continue
        ckpt = next(iter(sorted(work.glob("outputs/*/*/checkpoints/best.ckpt"))), None)
        for placeholder, value in PLACEHOLDERS.items():
            command = command.replace(placeholder, value.format(ckpt=ckpt, last=ckpt and ckpt.with_name("last.ckpt")))
        args = shlex.split(command)[1:]
        refused = next((v for prefix, v in REFUSED.items() if command.startswith(prefix)), None)
        if args[0] == "train" and refused is None:
            args += ["debug=fast", "progress_bar=false"]
        proc = subprocess.run([CTBENCH, *args], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        if refused is None:
            assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        else:
            code, words = refused
            last = proc.stderr.strip().splitlines()[-1]
            assert proc.returncode == code and last.startswith("ctbench: error: ") and words in last, (command, last)
        ran.append(command)
    assert any(c.startswith("ctbench predict") for c in ran) and any(c.startswith("ctbench export") for c in ran)
    assert (work / "model.onnx").is_file() and (work / "masks" / "000_S2_CT.dcm").is_file()
    assert not (work / "outputs" / "unet-dice_ce-3d").exists()  # no run folder of the refused trainings
