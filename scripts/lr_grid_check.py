"""Would a wider learning-rate grid move a loss arm's recorded choice? One rate beyond the grid's edge, judged by
the rule that chose (the best validation ``val/mean_dice`` of seed 0).

    multirun/claims_grid_check/run.sh        # the runs: seed 0 of five arms at 3x beyond the edge (~1 h of job time)
    .venv/bin/python scripts/lr_grid_check.py [--markdown]

Each run folder ``multirun/claims_grid_check/ARM-lrR`` is the arm's seed-0 run (``ARM``, a key of
``multirun/claims/lr_choice.json``) with the same overrides at rate R. The verdicts keep the declared 3-rate grid;
this is a sensitivity check of its choices: an arm whose choice would move is one whose claims rest on a rate the
grid may not bracket. A lead is one run against one run, so the arm's seed SD (``ctbench study report``'s
learning-rate table) says how much of it is noise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ctbench.run_folder import is_complete, read_summary
from ctbench.study import best_validation

ROOT = Path(__file__).resolve().parents[1]
CHOICES = ROOT / "multirun" / "claims" / "lr_choice.json"
CHECK = ROOT / "multirun" / "claims_grid_check"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="a markdown table (default: plain lines)")
    args = parser.parse_args()
    choices = json.loads(CHOICES.read_text())
    rows = []
    for run in sorted(p for p in CHECK.iterdir() if p.is_dir() and "-lr" in p.name):
        arm, rate = run.name.rsplit("-lr", 1)
        choice = choices[arm]
        chosen, score = choice["chosen"], choice["validation"][choice["chosen"]]
        if not is_complete(run):
            rows.append((arm, chosen, score, rate, None, "unfinished", ""))
            continue
        new = best_validation(run)
        convergence = (read_summary(run).get("convergence") or {}).get("verdict", "?")
        moves = "**moves**" if new > score else "stays"
        rows.append((arm, chosen, score, rate, new, moves, convergence))
    if args.markdown:
        print("| arm | chosen (validation) | beyond the edge (validation) | difference | the choice | run beyond |")
        print("|---|---|---|---:|---|---|")
    for arm, chosen, score, rate, new, moves, convergence in rows:
        if new is None:
            print(f"| {arm} | {chosen} ({score:.3f}) | {rate} | | {moves} | |" if args.markdown else
                  f"{arm}: {rate} unfinished")
        elif args.markdown:
            print(f"| {arm} | {chosen} ({score:.3f}) | {rate} ({new:.3f}) | {new - score:+.3f} | {moves} | {convergence} |")
        else:
            print(f"{arm}: chosen {chosen} {score:.3f}; {rate} {new:.3f} ({new - score:+.3f}, {convergence}): "
                  f"{moves.strip('*')}")


if __name__ == "__main__":
    main()
