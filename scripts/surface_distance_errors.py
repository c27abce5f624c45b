#!/usr/bin/env python
"""HD95, NSD and ASSD errors against the mesh-based reference (``pymeshmetrics``, MeshMetrics) on the 31
anisotropic cases of ``tests/test_surface_distance.py``: ctbench now, DeepMind's ``surface-distance``, and
optionally ctbench's ``case_metrics`` at an older git revision (``--baseline REV``, e.g. the voxel-counting
metrics of 0a25b71). NSD at the tolerance ctbench uses (the largest spacing). Prints a markdown table of
the median and largest absolute error per metric and tool, and writes every value to ``--out`` (JSON).

    .venv/bin/python scripts/surface_distance_errors.py --baseline 0a25b71     # about 2 min on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))
METRICS = ("hd95", "nsd", "assd")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=None, help="git revision whose case_metrics to measure as well")
    parser.add_argument("--out", type=Path, default=None, help="JSON of every case's values")
    args = parser.parse_args(argv)

    import meshmetrics
    import surface_distance as deepmind
    from benchmark_score import metrics_at

    from ctbench.atomic import atomic_write_json
    from ctbench.metrics import case_metrics
    from test_surface_distance import mesh_cases

    tools = {"ctbench": case_metrics}
    if args.baseline:
        tools[f"ctbench@{args.baseline}"] = metrics_at(args.baseline).case_metrics
    rows = []
    for name, p, t, spacing in mesh_cases():
        tol = max(spacing)
        row = {"case": name}
        for tool, fn in tools.items():
            (r,) = fn(p.astype(np.uint8), t.astype(np.uint8), spacing, {1: "x"}, tolerance_mm=tol)
            row[tool] = {k: r[k] for k in METRICS}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ref = deepmind.compute_surface_distances(t, p, spacing)
        row["deepmind"] = {"hd95": deepmind.compute_robust_hausdorff(ref, 95),
                           "nsd": deepmind.compute_surface_dice_at_tolerance(ref, tol),
                           "assd": float(np.mean(deepmind.compute_average_surface_distance(ref)))}
        mesh = meshmetrics.DistanceMetrics(verbose=False)
        mesh.set_input(ref=t, pred=p, spacing=spacing)
        row["mesh"] = {"hd95": mesh.hd(95), "nsd": mesh.nsd(tol), "assd": mesh.assd()}
        rows.append(row)
    print(f"{len(rows)} cases; absolute error against pymeshmetrics, median / max\n")
    print("| tool | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS))
    for tool in [*tools, "deepmind"]:
        cells = []
        for k in METRICS:
            e = [abs(r[tool][k] - r["mesh"][k]) for r in rows]
            cells.append(f"{np.median(e):.3f} / {np.max(e):.3f}")
        print(f"| {tool} | " + " | ".join(cells) + " |")
    if args.out:
        atomic_write_json(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
