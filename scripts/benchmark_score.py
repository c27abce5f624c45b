#!/usr/bin/env python
"""Wall time of ``ctbench score`` on 40 phantom test volumes (issue 22: surface distances may cost at most
1.5x the time of the voxel-counting ones).

The truths are ``ctbench synth --kind phantom`` cases (liver, spleen, kidney, lesions; 1.0-1.6 mm pixels,
1.5-5 mm slices); each prediction is its truth moved by (2, -1, 1) voxels, the spleen grown and the kidney
shrunk by one voxel, plus a spurious 3 x 3 x 2-voxel lesion, so every class has surface errors to measure.
Both are generated once into ``--data`` and reused. The script times ``ctbench score PRED TRUTH`` as a
subprocess (``--rounds`` times, median wall and CPU seconds) and the CPU seconds of the metric part alone
(``case_metrics`` over every case, in-process), and writes ``--out`` (JSON) with the figures and the git commit. ``--baseline REV`` also times
``case_metrics`` of ``src/ctbench/metrics.py`` at git revision REV, interleaved round by round with the
current one, so load from other processes hits both alike (ratio of medians).

    .venv/bin/python scripts/benchmark_score.py                     # 40 cases in data/benchmark_score
    .venv/bin/python scripts/benchmark_score.py --cases 8 --rounds 1
    .venv/bin/python scripts/benchmark_score.py --baseline 165b46b  # against the voxel-counting metrics
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHIFT = (2, -1, 1)


def shifted(labels: np.ndarray, shift: Sequence[int]) -> np.ndarray:
    """``labels`` moved by ``shift`` voxels, background coming in at the edges (no wrap-around)."""
    out = np.zeros_like(labels)
    src = tuple(slice(max(-s, 0), n - max(s, 0)) for s, n in zip(shift, labels.shape, strict=True))
    dst = tuple(slice(max(s, 0), n - max(-s, 0)) for s, n in zip(shift, labels.shape, strict=True))
    out[dst] = labels[src]
    return out


def make_prediction(truth: np.ndarray) -> np.ndarray:
    """The benchmark's prediction of one truth (see the module docstring)."""
    from scipy import ndimage

    pred = shifted(truth, SHIFT)
    pred[ndimage.binary_dilation(pred == 2) & (pred == 0)] = 2
    kidney = pred == 3
    pred[kidney & ~ndimage.binary_erosion(kidney)] = 0
    c = [n // 3 for n in pred.shape]
    pred[c[0]:c[0] + 3, c[1]:c[1] + 3, c[2]:c[2] + 2] = 4
    return pred


def prepare(data: Path, cases: int, seed: int) -> tuple[Path, Path]:
    """Truth and prediction folders under ``data`` (generated if ``data`` lacks them)."""
    import nibabel as nib

    truth_dir, pred_dir = data / "phantom" / "labelsTr", data / "pred"
    if not truth_dir.is_dir() or len(list(truth_dir.glob("*.nii.gz"))) != cases:
        subprocess.run([str(REPO / ".venv/bin/ctbench"), "synth", str(data / "phantom"), "--kind", "phantom",
                        "--cases", str(cases), "--seed", str(seed)], check=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    for f in sorted(truth_dir.glob("*.nii.gz")):
        if not (pred_dir / f.name).exists():
            img = nib.load(f)
            truth = np.asarray(img.dataobj)
            nib.save(nib.Nifti1Image(make_prediction(truth), img.affine, img.header), pred_dir / f.name)
    return truth_dir, pred_dir


def read_pairs(truth_dir: Path, pred_dir: Path) -> list[tuple[np.ndarray, np.ndarray, list[float]]]:
    """(prediction, truth, spacing) of every case, read once."""
    import nibabel as nib

    pairs = []
    for f in sorted(truth_dir.glob("*.nii.gz")):
        img = nib.load(f)
        pairs.append((np.asarray(nib.load(pred_dir / f.name).dataobj), np.asarray(img.dataobj),
                      [float(z) for z in img.header.get_zooms()[:3]]))
    return pairs


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_metrics(case_metrics: Callable, pairs: Sequence) -> float:
    """CPU seconds of ``case_metrics`` alone over every case (CPU time: other processes on the machine
    lengthen the wall time, not this)."""
    classes = {1: "liver", 2: "spleen", 3: "kidney", 4: "lesion"}
    start = time.process_time()
    for pred, truth, spacing in pairs:
        case_metrics(pred, truth, spacing, classes)
    return time.process_time() - start


def metrics_at(rev: str) -> ModuleType:
    """``src/ctbench/metrics.py`` as it was at git revision ``rev``, imported under another name."""
    text = subprocess.run(["git", "show", f"{rev}:src/ctbench/metrics.py"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"metrics_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"metrics_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "benchmark_score")
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="timed `ctbench score` runs (median)")
    parser.add_argument("--baseline", default=None, help="git revision whose case_metrics to time as well")
    parser.add_argument("--out", type=Path, default=None, help="JSON result (default DATA/benchmark_score.json)")
    args = parser.parse_args(argv)

    truth_dir, pred_dir = prepare(args.data, args.cases, args.seed)
    score_s, score_cpu_s = [], []
    for i in range(args.rounds):
        start, cpu = time.perf_counter(), children_cpu_s()
        subprocess.run([str(REPO / ".venv/bin/ctbench"), "score", str(pred_dir), str(truth_dir),
                        "--out", str(args.data / f"score_{i}")], check=True, capture_output=True)
        score_s.append(time.perf_counter() - start)
        score_cpu_s.append(children_cpu_s() - cpu)
    from ctbench.metrics import case_metrics

    pairs = read_pairs(truth_dir, pred_dir)
    baseline = metrics_at(args.baseline).case_metrics if args.baseline else None
    metrics_s, baseline_s = [], []
    for _ in range(args.rounds):
        metrics_s.append(time_metrics(case_metrics, pairs))
        if baseline:
            baseline_s.append(time_metrics(baseline, pairs))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    result = {"cases": args.cases, "commit": commit, "score_s_median": statistics.median(score_s),
              "score_s": score_s, "score_cpu_s_median": statistics.median(score_cpu_s), "score_cpu_s": score_cpu_s,
              "case_metrics_cpu_s": metrics_s}
    if baseline:
        result |= {"baseline": args.baseline, "baseline_case_metrics_cpu_s": baseline_s,
                   "case_metrics_ratio": statistics.median(metrics_s) / statistics.median(baseline_s)}
    from ctbench.atomic import atomic_write_json

    atomic_write_json(args.out or args.data / "benchmark_score.json", result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
