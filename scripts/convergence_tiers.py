"""The convergence gate's verdict of each study run at each epoch tier it was trained at.

A network with a seed still improving moves up an epoch tier and its runs are trained again
(docs/survey-reproduction.md, *The CPU study*); the removed runs' curves are kept in
``multirun/claims/study_*_runs.json``. This table puts a run's verdicts at every tier side by side, with the
gain the gate judged (best validation mean Dice of the last 20 % of epochs minus the best before; still
improving when over ``study.plateau``) and the run's test mean Dice, to see whether the same seed flips
between tiers (noise at the gate's margin) or improves steadily (too few epochs)::

    .venv/bin/python scripts/convergence_tiers.py [multirun/claims] [--markdown]
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def tiers(study_dir: Path) -> dict[str, dict[int, tuple[str, float, float | None]]]:
    """Run name -> epochs -> (verdict, gain, test mean Dice) for every run with a convergence record."""
    runs: dict[str, dict[int, tuple[str, float, float | None]]] = defaultdict(dict)

    def add(name: str, epochs: int, convergence: dict, test: float | None) -> None:
        gain = convergence["best_last"] - convergence["best_before"]
        runs[name][int(epochs)] = (convergence["verdict"], gain, test)

    for removed in sorted(study_dir.glob("study_*_runs.json")):
        for name, run in json.loads(removed.read_text()).items():
            add(name, run["epochs"], run["convergence"], run.get("test_mean_dice"))
    for summary in sorted(study_dir.glob("*/report/summary.json")):
        run = json.loads(summary.read_text())
        if run.get("convergence"):
            add(summary.parent.parent.name, run["epochs"], run["convergence"], run.get("mean_dice"))
    return runs


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    study_dir = Path(args[0] if args else "multirun/claims")
    runs = tiers(study_dir)
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


if __name__ == "__main__":
    main()
