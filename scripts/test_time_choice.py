"""Per run, the test scores of one trained network under other test-time choices, beside the scores its training
run reported: which checkpoint is tested (``best.ckpt``, chosen on the validation cases, or ``last.ckpt``, the end
of the schedule) and whether the largest connected component of each class is kept (``postprocess=lcc``).
Descriptive: the verdicts come from ``retrained_sensitivity.py`` on the same folders.

The folder holds one sub-folder per choice (``final/``, ``lcc/``: ``multirun/claims_test_time/run.sh``), each with
evaluation runs of ``ctbench eval ckpt_path=RUN/checkpoints/X.ckpt``; each is set against the training run whose
checkpoint it tested (its ``summary.json`` ``checkpoint``). Per run and choice: the checkpoint's epoch, the mean
test Dice and HD95 over the organ classes (``summary.json`` ``per_class``), and how many (case, organ) cells of
``report/per_case.csv`` have an HD95 above ``--far`` mm (an empty cell, HD95 undefined, is not counted)::

    PYTHONPATH=src .venv/bin/python scripts/test_time_choice.py multirun/claims_test_time

``--tested-epochs``: instead, for each training run below the folder (``multirun/claims``), the epoch of the
checkpoint its report tested against its schedule's length, the earliest first, and how many tested a checkpoint
from the first half of their schedule::

    PYTHONPATH=src .venv/bin/python scripts/test_time_choice.py multirun/claims --tested-epochs
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

ORGANS = ("liver", "spleen", "kidney")


def scores(run: Path, classes: tuple[str, ...], far: float) -> tuple[int, float, float, int]:
    """The tested checkpoint's epoch, mean organ Dice and HD95, and the organ cells with an HD95 above ``far``."""
    summary = json.loads((run / "report" / "summary.json").read_text())
    per_class = summary["per_class"]
    dice = math.fsum(per_class[c]["dice"] for c in classes) / len(classes)
    hd95 = math.fsum(per_class[c]["hd95"] for c in classes) / len(classes)
    with (run / "report" / "per_case.csv").open(newline="") as f:
        cells = sum(1 for row in csv.DictReader(f) if row["class"] in classes and row["hd95"] and float(row["hd95"]) > far)
    return int(summary["checkpoint_epoch"]), dice, hd95, cells


def cell(score: tuple[int, float, float, int] | None) -> str:
    """A table cell: Dice, HD95, far cells and the checkpoint's epoch; empty for a test not run yet."""
    if score is None:
        return ""
    epoch, dice, hd95, far = score
    return f"{dice:.3f}, {hd95:.1f}, {far} (epoch {epoch})"


def is_evaluation(summary: Path) -> bool:
    """Whether a run's ``summary.json`` is an evaluation's (``ctbench eval``: no training time)."""
    return json.loads(summary.read_text()).get("train_seconds") is None


def trained_run(evaluation: Path) -> Path:
    """The training run whose checkpoint an evaluation run tested."""
    checkpoint = json.loads((evaluation / "report" / "summary.json").read_text())["checkpoint"]
    return Path(checkpoint).parent.parent


def tested_epochs(folder: Path) -> None:
    """Print, per training run below ``folder``, the tested checkpoint's epoch (from 0) out of its epochs."""
    rows = []
    for path in sorted(folder.glob("*/report/summary.json")):
        summary = json.loads(path.read_text())
        if summary.get("train_seconds") is None or summary.get("checkpoint_epoch") is None:
            continue  # an evaluation run, or a report without the epoch
        epoch, epochs = int(summary["checkpoint_epoch"]), int(summary["epochs"])
        rows.append(((epoch + 1) / epochs, path.parent.parent.name, epoch, epochs))
    if not rows:
        raise SystemExit(f"{folder}: no complete training run there")
    rows.sort()
    print("| run | tested epoch | of |\n|---|---:|---:|")
    for _, name, epoch, epochs in rows:
        print(f"| {name} | {epoch} | {epochs} |")
    early = [name for share, name, _, _ in rows if share <= 0.5]
    print(f"{len(early)} of {len(rows)} training runs tested a checkpoint from the first half of their schedule")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder with one sub-folder of evaluation runs per choice")
    parser.add_argument("--classes", nargs="+", default=list(ORGANS), help="the classes averaged (default: the organs)")
    parser.add_argument("--far", type=float, default=50.0, help="an HD95 above this many mm counts as far (default 50)")
    parser.add_argument("--tested-epochs", action="store_true",
                        help="instead: the epoch each training run below the folder tested, against its schedule")
    args = parser.parse_args()
    if args.tested_epochs:
        tested_epochs(args.folder)
        return
    classes = tuple(args.classes)
    evaluations = {p: [e.parent.parent for e in sorted(p.glob("*/report/summary.json")) if is_evaluation(e)]
                   for p in sorted(args.folder.iterdir()) if p.is_dir()}
    choices = [p for p, runs in evaluations.items() if runs]  # a folder of training runs (replayed/) is not one
    if not choices:
        raise SystemExit(f"{args.folder}: no sub-folder with complete evaluation runs; run its run.sh first")
    trained: dict[Path, dict[str, tuple[int, float, float, int]]] = {}
    for choice in choices:
        for run in evaluations[choice]:
            trained.setdefault(trained_run(run), {})[choice.name] = scores(run, classes, args.far)
    names = [c.name for c in choices]
    print(f"Mean test {'/'.join(classes)} Dice and HD95 (mm), and cells with HD95 > {args.far:g} mm, per checkpoint "
          "tested (its epoch)")
    print("| training run | epochs | best.ckpt | " + " | ".join(names) + " |")
    print("|---|---:|---|" + "---|" * len(names))
    for run in sorted(trained, key=lambda p: (p.parent.name, p.name.split("-seed")[0], p.name)):
        epochs = json.loads((run / "report" / "summary.json").read_text())["epochs"]
        row = [scores(run, classes, args.far)] + [trained[run].get(n) for n in names]
        print(f"| {run.parent.name}/{run.name} | {epochs} | " + " | ".join(map(cell, row)) + " |")


if __name__ == "__main__":
    main()
