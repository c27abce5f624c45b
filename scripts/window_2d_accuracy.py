#!/usr/bin/env python
"""What ``inference.window_2d`` does to a trained 2D run's test scores: the run's own checkpoint evaluated again
with the other window, per case against the run's ``report/per_case.csv``.

    .venv/bin/python scripts/window_2d_accuracy.py multirun/claims/deeplabv3-dice_ce-2d-seed0 [RUN ...]

Each RUN is evaluated with ``ctbench eval`` (its ``best.ckpt``, its own experiment overrides, the window it was
not tested with) into ``multirun/window_check/NAME-WINDOW``; the table gives per run the mean over the test cases
of the organ Dice (liver, spleen, kidney) and of the lesion-wise Dice under both windows, the mean paired
difference (the run's window minus the other) and the largest per-case difference.
"""

from __future__ import annotations

import csv
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

ORGANS = ("liver", "spleen", "kidney")


def scores(per_case: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Per case: the mean organ Dice, and the lesion-wise Dice (cases with a lesion or a predicted one)."""
    organs: dict[str, list[float]] = {}
    lesions: dict[str, float] = {}
    with per_case.open() as f:
        for row in csv.DictReader(f):
            if row["class"] in ORGANS:
                organs.setdefault(row["case"], []).append(float(row["dice"]))
            elif row["class"] == "lesion" and row.get("lesion_dice"):
                lesions[row["case"]] = float(row["lesion_dice"])
    return {c: statistics.fmean(v) for c, v in organs.items()}, lesions


def main() -> None:
    root = Path("multirun/window_check")
    print("| run | tested with | organ Dice (own / other window) | mean diff | max abs diff "
          "| lesion Dice (own / other) | mean diff |")
    print("|---|---|---|---:|---:|---|---:|")
    for run in map(Path, sys.argv[1:]):
        cfg = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
        own = cfg["inference"].get("window_2d", "patch")
        other = "patch" if own == "slice" else "slice"
        out = root / f"{run.name}-{other}"
        overrides = [o for o in yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
                     if o.split("=")[0] in ("experiment", "model", "seed")]
        if not (out / "report" / "per_case.csv").exists():
            subprocess.run([str(Path(sys.executable).parent / "ctbench"), "eval",
                            f"ckpt_path={run}/checkpoints/best.ckpt", *overrides, f"inference.window_2d={other}",
                            "progress_bar=false", f"hydra.run.dir={out}"], check=True)
        (a_org, a_les), (b_org, b_les) = scores(run / "report" / "per_case.csv"), scores(out / "report" / "per_case.csv")
        diffs = [a_org[c] - b_org[c] for c in a_org]
        les = [a_les[c] - b_les[c] for c in a_les if c in b_les]
        print(f"| {run.name} | {own} | {statistics.fmean(a_org.values()):.4f} / {statistics.fmean(b_org.values()):.4f} "
              f"| {statistics.fmean(diffs):+.4f} | {max(map(abs, diffs)):.4f} "
              f"| {statistics.fmean(a_les.values()):.4f} / {statistics.fmean(b_les.values()):.4f} "
              f"| {statistics.fmean(les):+.4f} |", flush=True)


if __name__ == "__main__":
    main()
