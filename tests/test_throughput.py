"""``ctbench bench`` and the benchmark scripts run on tiny settings and write valid JSON.

Benchmarks, not timed tests: nothing here asserts a speed, only that every figure is there and is a
positive number (timings on a shared CI machine mean nothing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctbench.engine.throughput import StepTimer, nbytes, summarise
from ctbench.provenance import memory_now

from cli_helpers import REPO, ctbench


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def _script(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_step_timer_arithmetic():
    timer = StepTimer()
    timer.starts, timer.ends = [0.0, 1.0, 2.5, 4.0], [0.8, 2.0, 3.0, 4.5]
    assert timer.period(1) == [1.5, 1.5]
    assert timer.compute(1) == [1.0, 0.5, 0.5]
    assert timer.wait(1) == [0.5, 1.0]
    stats = summarise([2.0, 1.0, 4.0])
    assert stats["median_s"] == 2.0 and stats["per_s"] == 0.5 and stats["n"] == 3
    assert summarise([]) == {"n": 0}


def test_memory_helpers():
    import numpy as np
    import torch

    held = {"a": torch.zeros(10, dtype=torch.float32), "b": [np.zeros(5, np.uint8), ("x", torch.zeros(2, 2))]}
    assert nbytes(held) == 40 + 5 + 16
    now = memory_now()
    if sys.platform.startswith("linux"):
        assert _positive(now["rss_mb"]) and now["processes"] >= 1


@pytest.mark.slow
def test_bench_writes_benchmark_json(workdir):
    run = workdir / "outputs" / "bench"
    proc = ctbench("bench", "debug=fast", "progress_bar=false", "bench.steps=2", "bench.warmup=1",
                   "bench.loader_epochs=2", "bench.sw_volume=[24,24,20]", "bench.sw_repeats=1",
                   f"hydra.run.dir={run}", cwd=workdir)
    assert "train steps/s" in proc.stdout
    result = json.loads((run / "benchmark.json").read_text())
    assert result["benchmark"] == "ctbench bench"
    assert set(result["settings"]["parts"]) == {"loader", "train", "sliding_window", "memory"}
    for key in ("machine", "versions", "git_commit", "config", "train", "loader", "sliding_window", "memory"):
        assert key in result, key
    assert result["versions"]["torch"] and result["machine"]["logical_cpus"] >= 1
    assert result["config"]["model"] == "unet" and result["config"]["patch_size"] == [16, 16, 16]
    train = result["train"]
    for key in ("with_loading", "without_loading", "without_loading_plain_tensors"):
        assert train[key]["n"] == 2 and _positive(train[key]["per_s"]) and _positive(train[key]["median_s"]), key
    assert train["data_wait"]["n"] >= 1
    assert _positive(train["loading_overhead_ratio"]) and _positive(train["model_samples_per_s"])
    loader = result["loader"]
    for key in ("first_epoch", "later_epochs"):
        assert _positive(loader[key]["samples_per_s"]), key
    assert loader["first_epoch"]["samples"] > 0 and loader["later_epochs"]["epochs"] == 1
    # the loader's batches hold the config's patches per batch (the model's rate is counted in them)
    first = loader["first_epoch"]
    assert first["samples"] == first["batches"] * result["config"]["patches_per_batch"]
    assert _positive(loader["cache_memory_mb"]) and _positive(loader["dataset_disk_mb"])
    assert _positive(loader["loader_to_model_ratio"])
    sw = result["sliding_window"]
    assert sw["volume"] == [24, 24, 20] and sw["roi"] == [16, 16, 16] and _positive(sw["seconds_per_volume"])
    memory = result["memory"]
    assert _positive(memory["peak_rss_mb"]) and memory["peak_rss_mb"] >= 0.99 * memory["end"]["rss_mb"]
    assert _positive(memory["cache_memory_mb"])


def test_bench_parts_can_be_switched_off(workdir):
    run = workdir / "outputs" / "bench_sw_only"
    ctbench("bench", "debug=fast", "bench.parts.loader=false", "bench.parts.train=false", "bench.parts.memory=false",
            "bench.sw_volume=[20,20,18]", "bench.sw_repeats=1", f"hydra.run.dir={run}", cwd=workdir)
    result = json.loads((run / "benchmark.json").read_text())
    assert result["settings"]["parts"] == ["sliding_window"]
    assert "train" not in result and "loader" not in result and _positive(result["sliding_window"]["seconds_per_volume"])
    bad = ctbench("bench", "debug=fast", "+bench.parts.gpu=true", f"hydra.run.dir={run}_bad", cwd=workdir, check=False)
    assert bad.returncode == 2 and "unknown bench.parts" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_benchmark_script_quick_runs(workdir):
    out = workdir / "benchmark_quick.json"
    proc = _script(str(REPO / "scripts" / "benchmark.py"), "--quick", "--workdir", str(workdir / "bench_script"),
                   "--out", str(out), cwd=workdir)
    assert "ctbench vs plain PyTorch + MONAI" in proc.stdout
    result = json.loads(out.read_text())
    assert result["quick"] and set(result["parts"]) == {"overhead", "data", "inference", "predict", "startup", "memory"}
    o = result["overhead"]
    for key in ("ratio_without_loading", "ratio_with_loading", "ratio_without_loading_plain_tensors"):
        assert _positive(o[key]), key
    assert all(_positive(v) for v in o["median_step_s"].values())
    assert _positive(result["data"]["later_epochs_loader_to_model"])
    assert _positive(result["inference"]["ratio_ctbench_to_monai"]) and _positive(result["inference"]["nifti_write_s"])
    p = result["predict"]
    assert p["cases"] == 2 and _positive(p["per_case_s"]) and len(list((workdir / "bench_script" / "predict").glob(
        "output_2_0/*.nii.gz"))) == 2
    assert _positive(result["startup"]["help"]["median_s"]) and _positive(result["startup"]["train_cfg_job"]["median_s"])
    m = result["memory"]
    # epoch ends are seen by polling last.ckpt every 0.2 s: tiny quick-mode epochs can end within one poll
    assert _positive(m["peak_rss_mb"]) and 1 <= len(m["rss_at_epoch_end_mb"]) <= 3


def test_gpu_check_exits_cleanly_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the check itself would run")
    proc = _script(str(REPO / "scripts" / "gpu_check.py"), "--out", str(tmp_path / "gpu.json"), cwd=tmp_path)
    assert "no CUDA GPU" in proc.stdout and not (tmp_path / "gpu.json").exists()


@pytest.mark.slow
def test_ddp_memory_script_measures_both_runs(workdir):
    """Two real gloo processes on the tiny phantom: one peak per rank, each a plausible process size."""
    out = workdir / "ddp_memory.json"
    _script(str(REPO / "scripts" / "ddp_memory.py"), "--epochs", "1", "-o", "debug=fast", "--workdir",
            str(workdir / "ddp_memory"), "--out", str(out), cwd=workdir)
    result = json.loads(out.read_text())
    assert len(result["single"]["processes"]) == 1 and len(result["ddp_2_processes"]["processes"]) == 2
    for run in ("single", "ddp_2_processes"):
        for p in result[run]["processes"]:
            assert 200 < p["rss_mb"] < 8000 and _positive(p["pss_mb"])


def test_nnunet_scripts_say_what_is_missing(tmp_path):
    """Without nnunetv2 the nnU-Net comparisons exit 0 with a message (CI has no nnU-Net)."""
    import shutil

    if shutil.which("nnUNetv2_predict"):
        pytest.skip("nnU-Net is installed here")
    proc = _script(str(REPO / "scripts" / "predict_vs_nnunet.py"), "--nnunet-base", str(tmp_path), "--ckpt",
                   str(tmp_path / "best.ckpt"), cwd=tmp_path)
    assert "nnUNetv2_predict is not on PATH" in proc.stdout


@pytest.mark.slow
def test_weight_map_benchmark_runs(workdir):
    proc = _script(str(REPO / "scripts" / "weight_map_benchmark.py"), "--cases", "2", "-o", "debug=fast", cwd=workdir)
    assert "whole volume (once per case, cached)" in proc.stdout and "16x16x16 patch" in proc.stdout
