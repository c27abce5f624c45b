"""Model x loss sweeps run here (Hydra multirun, basic launcher): reports for every job, the comparison
table, a rerun that skips finished jobs and resumes unfinished ones, bad sweep input, and the presets
(experiment=survey_grid*, hydra/launcher=slurm*) composing as documented in docs/slurm.md."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli_helpers import REPO, TINY, ctbench, read_summary

SWEEP = ["-m", *TINY, "loss=dice,ce", "trainer.max_epochs=1"]
JOBS = ("unet-dice-3d-seed42-fold0", "unet-ce-3d-seed42-fold0")


@pytest.fixture(scope="module")
def sweep(workdir: Path) -> tuple[Path, list[str]]:
    """A two-job sweep (unet x {dice, ce}) on the tiny phantom, run once for this module."""
    root = workdir / "multirun" / "sweeps_local"
    args = ["train", *SWEEP, f"hydra.sweep.dir={root}"]
    proc = ctbench(*args, cwd=workdir)
    (root / "sweep_stdout.txt").write_text(proc.stdout)
    return root, args


def sweep_output(root: Path) -> str:
    return (root / "sweep_stdout.txt").read_text()


@pytest.mark.slow
def test_local_sweep_writes_both_reports_and_the_comparison(sweep, workdir):
    root, _ = sweep
    for job, loss in zip(JOBS, ("dice", "ce"), strict=True):
        summary = read_summary(root / job)
        assert summary["status"] == "complete"
        assert (summary["model"], summary["loss"], summary["dims"], summary["seed"]) == ("unet", loss, 3, 42)
        assert (root / job / "checkpoints" / "last.ckpt").is_file()
    out = workdir / "sweeps_local_report"
    proc = ctbench("report", str(root), "--out", str(out), cwd=workdir)
    with (out / "comparison.csv").open(newline="") as fh:
        rows = {(r["model"], r["loss"]): r for r in csv.DictReader(fh)}
    assert set(rows) == {("unet", "dice"), ("unet", "ce")}
    for (_, loss), row in rows.items():
        assert float(row["dice_mean"]) == pytest.approx(read_summary(root / f"unet-{loss}-3d-seed42-fold0")["mean_dice"],
                                                        abs=1e-6)
    assert (out / "comparison.md").is_file() and "dice" in proc.stdout
    assert f"sweep finished: all 2 job(s) complete in {root}" in sweep_output(root)


@pytest.mark.slow
def test_rerunning_the_same_sweep_skips_complete_jobs(sweep, workdir):
    root, args = sweep
    before = {job: (root / job / "report" / "summary.json").stat().st_mtime_ns for job in JOBS}
    ckpt_before = {job: (root / job / "checkpoints" / "last.ckpt").stat().st_mtime_ns for job in JOBS}
    proc = ctbench(*args, cwd=workdir)
    assert proc.stdout.count("already holds a complete report") == 2, proc.stdout[-3000:]
    for job in JOBS:
        assert (root / job / "report" / "summary.json").stat().st_mtime_ns == before[job]
        assert (root / job / "checkpoints" / "last.ckpt").stat().st_mtime_ns == ckpt_before[job]


@pytest.mark.slow
def test_rerun_resumes_a_job_that_has_a_checkpoint_but_no_report(sweep, workdir):
    """A job cut off after its last checkpoint (no report yet) resumes from last.ckpt on the same command."""
    root, args = sweep
    job = root / JOBS[1]
    shutil.rmtree(job / "report")
    proc = ctbench(*args, cwd=workdir)
    assert proc.stdout.count("already holds a complete report") == 1, proc.stdout[-3000:]
    assert f"resuming from {job / 'checkpoints' / 'last.ckpt'}" in proc.stdout, proc.stdout[-3000:]
    assert read_summary(job)["status"] == "complete"


@pytest.mark.slow
def test_a_failed_job_is_named_at_the_end_and_the_sweep_exits_1(sweep, workdir):
    """The other jobs still run (here: skipped as complete); the launching process lists the failed ones."""
    root, args = sweep
    proc = ctbench(*args, "fold=0,9", cwd=workdir, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stdout.count("already holds a complete report") == 2, proc.stdout[-3000:]
    failed = [line for line in proc.stderr.splitlines() if line.startswith("ctbench: sweep job ")]
    assert sorted(line.split()[3] for line in failed) == ["unet-ce-3d-seed42-fold9", "unet-dice-3d-seed42-fold9"]
    assert all("fold=9 is out of range" in line for line in failed), proc.stderr[-3000:]
    assert "sweep finished with 2 of 4 job(s) failed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_model_in_a_sweep_fails_before_any_job(tmp_path):
    sweep_dir = tmp_path / "multirun" / "bad"
    proc = ctbench("train", "-m", *TINY, "model=unet,unetx", "loss=dice,ce", f"hydra.sweep.dir={sweep_dir}",
                   cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unknown model 'unetx'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()


def test_slurm_launcher_without_sbatch_is_one_line(tmp_path):
    """hydra/launcher=slurm on a machine without SLURM: one line saying so, no traceback, nothing submitted."""
    bin_dir = tmp_path / "bin"  # a PATH with python and nothing from SLURM
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir)}
    proc = subprocess.run([sys.executable, "-m", "ctbench.cli", "train", "-m", "hydra/launcher=slurm", *TINY,
                           "loss=dice,ce"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "sbatch" in errors[0] and "slurm_local.sh" in errors[0], proc.stderr[-2000:]
    assert not (tmp_path / "multirun").exists()


# ------------------------------------------------------------------------------------------ presets


def _sweeper_params(name: str) -> dict[str, str]:
    cfg = yaml.safe_load((REPO / "configs" / "experiment" / f"{name}.yaml").read_text())
    return {k: str(v) for k, v in cfg["hydra"]["sweeper"]["params"].items()}


@pytest.mark.parametrize("name", ["survey_grid", "survey_grid_cpu"])
def test_grid_names_exist(name):
    """Every model and loss a grid sweeps has a config file (models and losses get renamed or added)."""
    params = _sweeper_params(name)
    for group in ("model", "loss"):
        names = params[group].split(",")
        assert len(names) == len(set(names))
        missing = [n for n in names if not (REPO / "configs" / group / f"{n}.yaml").is_file()]
        assert not missing, f"{name}.yaml sweeps {group} names with no configs/{group}/NAME.yaml: {missing}"


def test_cpu_grid_is_4_by_4_in_2d_with_its_own_sweep_dir(tmp_path):
    params = _sweeper_params("survey_grid_cpu")
    assert len(params["model"].split(",")) == 4 and len(params["loss"].split(",")) == 4
    job = ctbench("train", "experiment=survey_grid_cpu", "--cfg", "job", "--resolve", cwd=tmp_path).stdout
    cfg = yaml.safe_load(job)
    assert cfg["dims"] == 2 and cfg["trainer"]["accelerator"] == "cpu"
    hydra_cfg = yaml.safe_load(ctbench("train", "experiment=survey_grid_cpu", "--cfg", "hydra", cwd=tmp_path).stdout)
    assert hydra_cfg["hydra"]["sweep"]["dir"].endswith("multirun/survey_grid_cpu")  # fixed: reruns resume


def test_gpu_grid_is_3d_on_gpu_with_seeds():
    cfg = yaml.safe_load((REPO / "configs" / "experiment" / "survey_grid.yaml").read_text())
    assert cfg["dims"] == 3 and {"override /trainer": "gpu"} in cfg["defaults"]
    params = _sweeper_params("survey_grid")
    assert len(params["seed"].split(",")) >= 3
    assert {"unet", "vnet", "fcn8s", "segnet", "deeplabv3p", "pspnet", "attention_unet", "fcdensenet"} <= set(
        params["model"].split(","))
    assert {"ce", "dice", "focal", "tversky", "combo"} <= set(params["loss"].split(","))


@pytest.mark.parametrize("name", ["survey_grid", "survey_grid_cpu"])
def test_experiments_are_listed(name, tmp_path):
    out = ctbench("list", "experiments", cwd=tmp_path).stdout
    assert re.search(rf"{name}\s+Survey grid", out), out


def _launcher(*overrides: str) -> dict:
    """hydra.launcher as the launcher receives it (resolved against the whole config, as Hydra does)."""
    from ctbench.config import hydra_block

    return hydra_block("train", overrides)["launcher"]


def test_slurm_preset_follows_the_lightning_devices():
    launcher = _launcher("hydra/launcher=slurm", "trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2")
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher["tasks_per_node"], launcher["gpus_per_node"], launcher["nodes"]) == (8, 8, 2)
    assert launcher["max_num_timeout"] > 0 and launcher["submitit_folder"].endswith(".submitit/%j")
    one_gpu = _launcher("hydra/launcher=slurm", "trainer=gpu")
    assert (one_gpu["tasks_per_node"], one_gpu["gpus_per_node"], one_gpu["nodes"]) == (1, 1, 1)


def test_every_slurm_value_is_an_override():
    launcher = _launcher("hydra/launcher=slurm", "hydra.launcher.partition=a100", "hydra.launcher.timeout_min=30",
                         "hydra.launcher.cpus_per_task=4", "hydra.launcher.mem_gb=32", "hydra.launcher.array_parallelism=5",
                         "hydra.launcher.max_num_timeout=1", "+hydra.launcher.additional_parameters.mail-type=END",
                         "hydra.launcher.tasks_per_node=2")
    assert (launcher["partition"], launcher["timeout_min"], launcher["cpus_per_task"], launcher["mem_gb"]) == (
        "a100", 30, 4, 32)
    assert (launcher["array_parallelism"], launcher["max_num_timeout"], launcher["tasks_per_node"]) == (5, 1, 2)
    assert launcher["additional_parameters"] == {"mail-type": "END"}


def test_slurm_cpu_preset_asks_for_no_gpu():
    launcher = _launcher("hydra/launcher=slurm_cpu")
    assert launcher["gpus_per_node"] is None and launcher["tasks_per_node"] == 1 and launcher["cpus_per_task"] == 1


def test_launcher_presets_describe_themselves():
    for path in sorted((REPO / "configs" / "hydra" / "launcher").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# ") and len(first) > 20, path
    for path in sorted((REPO / "configs" / "experiment").glob("*.yaml")):
        lines = path.read_text().splitlines()
        assert lines[0] == "# @package _global_" and lines[1].startswith("# "), path

