"""Would a 15-epoch learning-rate probe choose the same rate as the study's grid? Each loss arm's three seed-0
probe runs judged by the rule that chose (:func:`ctbench.study.choose` on :func:`ctbench.study.best_validation`,
ties to the configured rate), against the recorded choice.

    multirun/claims_lr_probe/run.sh                 # the 57 probe runs (19 arms x 3 rates, 15 epochs each)
    PYTHONPATH=src .venv/bin/python scripts/lr_probe_check.py [--markdown]

Each probe folder ``multirun/claims_lr_probe/ARM-lrR`` is the grid run ``multirun/claims_tuning/ARM-lrR`` (``ARM``
a key of ``multirun/claims/lr_choice.json``) with its overrides and ``trainer.max_epochs=15``. Where the probe
picks another rate, its cost is read on the full grid: the grid's validation score at the probe's rate minus at
the chosen one, against the seed SD of the arm's best validation Dice at the chosen rate (one run against one
run differs by about 1.4 seed SDs by chance), and seed 0's test ``mean_dice`` at each rate. The verdicts keep
the declared grid; this measures what a cheaper grid would cost. Job time: the probe's from the ``/usr/bin/time``
line of each log in ``logs/`` (and the part of it after training, the 40-volume test a probe does not need, from
``train.log``: the fit's end to its last line), the grid's from ``multirun/claims/study_jobs.json`` (and of it the
runs at the chosen rates, which are the arms' seed-0 runs: a probe would have to train them).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from ctbench.run_folder import is_complete, read_summary
from ctbench.study import best_validation, choose, seed_folder

WALL = re.compile(r"^([0-9.]+) s wall", re.M)
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def probe_seconds(run: Path) -> float | None:
    """A probe job's wall seconds, from the ``/usr/bin/time`` line of its log; None while it runs."""
    log = run.parent / "logs" / f"{run.name}.log"
    found = WALL.findall(log.read_text()) if log.exists() else []
    return float(found[-1]) if found else None


def test_seconds(run: Path) -> float:
    """Seconds from the end of a run's fit (Lightning's "`Trainer.fit` stopped" line) to the last timestamped line
    of its ``train.log``: its test and report; 0 when the log lacks either."""
    from datetime import datetime

    lines = (run / "train.log").read_text().splitlines() if (run / "train.log").exists() else []
    stamps = [(m.group(1), line) for line in lines if (m := STAMP.match(line))]
    fit_end = next((t for t, line in stamps if "`Trainer.fit` stopped" in line), None)
    if fit_end is None:
        return 0.0
    last, end = (datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in (stamps[-1][0], fit_end))
    return (last - end).total_seconds()


def arm_row(root: Path, arm: str, choice: dict, jobs: dict) -> dict:
    """The probe's scores and choice for one arm, beside the grid's, with the cost of a different choice; ``root``
    the repository (``choice["runs"]`` and the keys of ``jobs`` are relative to it)."""
    rates = list(choice["validation"])
    probes = {r: root / "multirun" / "claims_lr_probe" / f"{arm}-lr{r}" for r in rates}
    done = {r: p for r, p in probes.items() if is_complete(p)}
    grid_runs = {r: root / choice["runs"][r] for r in rates}
    row = {"arm": arm, "epochs": read_summary(grid_runs[rates[0]]).get("epochs"), "chosen": choice["chosen"],
           "grid": choice["validation"], "probe": {r: best_validation(p) for r, p in done.items()},
           "probe_seconds": sum(s for p in done.values() if (s := probe_seconds(p)) is not None),
           "test_seconds": sum(test_seconds(p) for p in done.values()),
           "grid_seconds": sum(jobs[choice["runs"][r]]["seconds"] for r in rates),
           "chosen_seconds": jobs[choice["runs"][choice["chosen"]]]["seconds"]}
    if len(done) < len(rates):
        return row | {"pick": None}
    pick = choose(row["probe"], choice["configured"])
    row["pick"] = pick
    if pick != choice["chosen"]:
        seeds = [best_validation(r) for s in range(3)
                 if is_complete(r := seed_folder(root / "multirun" / "claims" / arm, s))]
        row["cost"] = choice["validation"][pick] - choice["validation"][choice["chosen"]]
        row["seed_sd"] = statistics.stdev(seeds) if len(seeds) > 1 else None
        row["test"] = {r: float(read_summary(grid_runs[r])["mean_dice"]) for r in (choice["chosen"], pick)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="a markdown table (default: plain lines)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the repository whose multirun/ holds the study and the probe (default: this one)")
    args = parser.parse_args()
    choices = json.loads((args.root / "multirun" / "claims" / "lr_choice.json").read_text())
    jobs = json.loads((args.root / "multirun" / "claims" / "study_jobs.json").read_text())
    rows = [arm_row(args.root, arm, choice, jobs) for arm, choice in sorted(choices.items())]
    if args.markdown:
        print("| arm | grid epochs | grid: validation per rate | probe (15 epochs): validation per rate | "
              "the probe's choice | its cost on the grid (seed SD) | seed 0's test Dice, chosen / probe's |")
        print("|---|---:|---|---|---|---|---|")
    for row in rows:
        grid = " / ".join(f"{v:.3f}" + ("*" if r == row["chosen"] else "") for r, v in row["grid"].items())
        probe = " / ".join(f"{v:.3f}" + ("*" if r == row["pick"] else "") for r, v in row["probe"].items())
        if row["pick"] is None:
            verdict, cost, test = f"unfinished ({len(row['probe'])} of 3)", "", ""
        elif row["pick"] == row["chosen"]:
            verdict, cost, test = f"{row['pick']}, the same", "", ""
        else:
            sd = row["seed_sd"]
            verdict = f"**{row['pick']}** (grid: {row['chosen']})"
            cost = f"{row['cost']:+.3f}" + (f" ({sd:.3f}; {row['cost'] / sd:+.1f} SD)" if sd else "")
            test = " / ".join(f"{v:.3f}" for v in row["test"].values())
        if args.markdown:
            print(f"| {row['arm']} | {row['epochs']} | {grid} | {probe} | {verdict} | {cost} | {test} |")
        else:
            print(f"{row['arm']}: grid {grid}; probe {probe}: {verdict.replace('**', '')} {cost} {test}".rstrip())
    finished = [r for r in rows if r["pick"] is not None]
    same = sum(r["pick"] == r["chosen"] for r in finished)
    minutes = {key: sum(r[key] for r in finished) / 60
               for key in ("probe_seconds", "test_seconds", "grid_seconds", "chosen_seconds")}
    all_grid = sum(r["grid_seconds"] for r in rows) / 60
    print(f"\n{same} of {len(finished)} finished arms: the probe chooses the grid's rate"
          f" (* marks each choice). Job time of the finished arms: the probe {minutes['probe_seconds']:.0f} min"
          f" ({3 * len(finished)} runs; {minutes['test_seconds']:.0f} min of it their tests), the grid"
          f" {minutes['grid_seconds']:.0f} min ({minutes['chosen_seconds']:.0f} min of it the runs at the chosen rates);"
          f" the whole grid is {all_grid:.0f} of the {sum(j['seconds'] for j in jobs.values()) / 60:.0f} min that"
          " study_jobs.json records for the study's runs.")


if __name__ == "__main__":
    main()
