"""The convergence gate's verdict of each study run at each epoch tier it was trained at.

A network with a seed still improving moves up an epoch tier and its runs are trained again
(docs/survey-reproduction.md, *The CPU study*); the removed runs' curves are kept in
``multirun/claims/study_*_runs.json``. This table puts a run's verdicts at every tier side by side, with the
gain the gate judged (best validation mean Dice of the last 20 % of epochs minus the best before; still
improving when over ``study.plateau``) and the run's test mean Dice, to see whether the same seed flips
between tiers (noise at the gate's margin) or improves steadily (too few epochs). Then, per arm (a run
name without its seed) and tier, the study's rule (every seed converged) beside the same rule applied once to
the seeds' mean learning curve: what a gate on the mean would have decided, on the same runs::

    .venv/bin/python scripts/convergence_tiers.py [multirun/claims] [--markdown]
"""
from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ctbench.reports.convergence import convergence


def records(study_dir: Path) -> list[tuple[str, int, dict, float | None]]:
    """(run name, epochs, convergence block, test mean Dice) of every run with a convergence record: the removed
    runs' curves (``study_*_runs.json``) and the complete runs' ``summary.json``."""
    found = []
    for removed in sorted(study_dir.glob("study_*_runs.json")):
        for name, run in json.loads(removed.read_text()).items():
            found.append((name, int(run["epochs"]), run["convergence"], run.get("test_mean_dice")))
    for summary in sorted(study_dir.glob("*/report/summary.json")):
        run = json.loads(summary.read_text())
        if run.get("convergence"):
            found.append((summary.parent.parent.name, int(run["epochs"]), run["convergence"], run.get("mean_dice")))
    return found


def tiers(found: list[tuple[str, int, dict, float | None]]) -> dict[str, dict[int, tuple[str, float, float | None]]]:
    """Run name -> epochs -> (verdict, gain, test mean Dice)."""
    runs: dict[str, dict[int, tuple[str, float, float | None]]] = defaultdict(dict)
    for name, epochs, block, test in found:
        runs[name][epochs] = (block["verdict"], block["best_last"] - block["best_before"], test)
    return runs


def mean_curve_gate(found: list[tuple[str, int, dict, float | None]]) -> list[tuple[str, int, str, str]]:
    """(arm, epochs, the study's rule: still-improving seeds of n, the rule on the seeds' mean curve) per arm
    and tier with 2 or more seeds (validations at the same epochs)."""
    arms: dict[tuple[str, int], list[tuple[list, float]]] = defaultdict(list)
    for name, epochs, block, _ in found:
        arms[(re.sub(r"-seed\d+", "", name), epochs)].append((block["history"], block["plateau"]))
    rows = []
    for (arm, epochs), records in sorted(arms.items()):
        if len(records) < 2:
            continue
        per_run = [convergence(h, epochs, True, plateau)["verdict"] for h, plateau in records]
        curves = [dict((int(e), v) for e, v in h) for h, _ in records]
        shared = sorted(set.intersection(*(set(c) for c in curves)))
        mean = convergence([[e, float(np.mean([c[e] for c in curves]))] for e in shared], epochs, True,
                           records[0][1])
        gain = mean["best_last"] - mean["best_before"]
        rows.append((arm, epochs, f"{per_run.count('still improving')} of {len(per_run)} still improving",
                     f"{mean['verdict']} {gain:+.4f}"))
    return rows


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    study_dir = Path(args[0] if args else "multirun/claims")
    found = records(study_dir)
    runs = tiers(found)
    multi = {n: t for n, t in runs.items() if len(t) > 1}
    cell = lambda v: f"{v[0]} {v[1]:+.4f}" + (f", test {v[2]:.3f}" if v[2] is not None else "")  # noqa: E731
    if "--markdown" in sys.argv:
        print("| run | " + " | ".join(["verdict, gain, test Dice per tier"]) + " |\n|---|---|")
    for name, by_epochs in sorted(multi.items()):
        row = "; ".join(f"{e} ep: {cell(v)}" for e, v in sorted(by_epochs.items()))
        print(f"| {name} | {row} |" if "--markdown" in sys.argv else f"{name:36s} {row}")
    flips = [n for n, t in multi.items() if len({v[0] for v in t.values()}) > 1
             and [v[0] for _, v in sorted(t.items())][0] == "converged"]
    per_tier: dict[int, list[str]] = defaultdict(list)
    for by_epochs in runs.values():
        for epochs, v in by_epochs.items():
            per_tier[epochs].append(v[0])
    print("\nstill improving per tier (all runs with a record, removed ones included): " + "; ".join(
        f"{e} epochs {v.count('still improving')} of {len(v)}" for e, v in sorted(per_tier.items())))
    print(f"{len(multi)} runs trained at more than one tier; converged at a lower tier and still improving at a "
          f"higher one: {', '.join(sorted(flips)) or 'none'}")
    rows = mean_curve_gate(found)
    print("\nper arm and tier: the study's rule (every seed converged) | the rule on the seeds' mean curve")
    for arm, epochs, per_run, mean in rows:
        print(f"| {arm} | {epochs} | {per_run} | {mean} |" if "--markdown" in sys.argv
              else f"{arm:36s} {epochs:4d} ep  {per_run:26s} mean curve: {mean}")
    passes = sum(r[2].startswith("0 of") for r in rows)
    mean_passes = sum(r[3].startswith("converged") for r in rows)
    print(f"{len(rows)} arm-tiers: {passes} pass the study's rule, {mean_passes} would pass a gate on the mean curve")


if __name__ == "__main__":
    main()
