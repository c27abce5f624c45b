"""Runs that lose an organ: every complete run whose test mean Dice of a class is below a floor, per loss and seed.

A loss arm's seed that never learns an organ (the spleen of Dice loss's seed 2, at Dice 0.016) decides C8 and
weighs on every claim with that arm; the study's claims see it only through means and seed SDs. This table counts
it directly, over every run of the given study folders on one dataset: per loss (rows) and training seed
(columns), the runs that lose a class out of the runs, then each such run with its classes' Dice (and its
convergence gate's verdict when it did not converge: a short arm, or a grid rate that was still improving). A class
is lost when its mean Dice over the test cases (``report/summary.json``'s ``per_class``) is below ``--below``
(0.1). The lesion class is left out by default: most arms are at its floor (``docs/survey-reproduction.md``). Runs
tested on the validation cases (the CRF grid of ``multirun/claims_tuning``) are left out unless ``--split val``;
the rate grid's runs are tested on the test cases, so every rate counts.
Descriptive only: no verdict reads it, and the study folders share runs' seeds, so counts are not independent.

    .venv/bin/python scripts/lost_classes.py multirun/claims multirun/claims_fresh_seeds multirun/claims_dice_b*
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def lost_classes(summary: dict, below: float, skip: set[str]) -> dict[str, float]:
    """The classes of a run's summary whose mean Dice is below ``below``, with that Dice."""
    return {name: row["dice"] for name, row in summary["per_class"].items()
            if name not in skip and row.get("dice") is not None and row["dice"] < below}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="study folders (one run folder per run below each)")
    parser.add_argument("--below", type=float, default=0.1, help="a class is lost below this mean Dice (0.1)")
    parser.add_argument("--dataset", default="phantom_study", help="only runs on this dataset (phantom_study)")
    parser.add_argument("--split", default="test", help="only runs tested on this split (test)")
    parser.add_argument("--with-lesion", action="store_true", help="count the lesion class too")
    args = parser.parse_args()
    skip = set() if args.with_lesion else {"lesion"}
    counts: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    losing = []
    for folder in args.folders:
        for path in sorted(folder.glob("*/report/summary.json")):
            summary = json.loads(path.read_text())
            if summary.get("dataset") != args.dataset or summary.get("split") != args.split:
                continue
            lost = lost_classes(summary, args.below, skip)
            cell = counts[summary["loss"]][int(summary["seed"])]
            cell[0] += bool(lost)
            cell[1] += 1
            if lost:
                verdict = (summary.get("convergence") or {}).get("verdict", "converged")
                losing.append((path.parent.parent, lost, "" if verdict == "converged" else f" ({verdict})"))
    if not counts:
        raise SystemExit(f"no complete run on dataset={args.dataset}, split={args.split} below {args.folders}: "
                         "pass study folders whose runs have report/summary.json")
    seeds = sorted({seed for row in counts.values() for seed in row})
    print(f"Runs with a class below Dice {args.below} / runs, per loss and seed ({args.dataset}, {args.split}):\n")
    print("| loss | " + " | ".join(f"seed {seed}" for seed in seeds) + " | all |")
    print("|---|" + "---:|" * (len(seeds) + 1))
    for loss, row in sorted(counts.items()):
        cells = [f"{row[seed][0]}/{row[seed][1]}" if seed in row else "" for seed in seeds]
        total = [sum(cell[i] for cell in row.values()) for i in (0, 1)]
        print(f"| {loss} | " + " | ".join(cells) + f" | {total[0]}/{total[1]} |")
    print()
    for run, lost, unconverged in losing:
        print(f"- {run}: " + ", ".join(f"{name} {dice:.3f}" for name, dice in lost.items()) + unconverged)


if __name__ == "__main__":
    main()
