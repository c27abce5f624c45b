"""The study's claims judged again with some of their runs trained again, beside the declared verdicts; a
sensitivity analysis, never the verdicts.

A folder of runs named as the study's (``multirun/claims_same_code``: the runs of the sides trained before
commit ba3ec25, trained again with today's code, its ``run.sh``) takes the place of the study's runs of the same
names in every claim that reads one of them. Judged in the whole declared family (every claim file), from the
complete runs below ``multirun/claims``:

    PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_same_code
"""

from __future__ import annotations

import argparse
from pathlib import Path

from precision_convention_sensitivity import cell  # scripts/ is on the path of a script run from it

from ctbench.reports.claims import evaluate_claims, load_claims, sides
from ctbench.reports.collect import collect, find_run_dirs
from ctbench.study import CLAIMS_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("retrained", type=Path, help="a folder of complete runs named as the study's")
    parser.add_argument("--study", type=Path, default=Path("multirun/claims"), help="the study's folder")
    args = parser.parse_args()
    if not args.retrained.is_dir() or not find_run_dirs(args.retrained):
        raise SystemExit(f"{args.retrained}: no complete run there; train them first (its run.sh)")
    runs = [r for r in collect([args.study])[0] if "report" not in r.path.relative_to(args.study).parts]
    again = {r.path.name: r for r in collect([args.retrained])[0]}
    unknown = sorted(set(again) - {r.path.name for r in runs})
    if unknown:
        raise SystemExit(f"{args.retrained}: {', '.join(unknown)} name no run of {args.study}")
    swapped = [again.get(r.path.name, r) for r in runs]
    claims = load_claims(CLAIMS_DIR)
    touched = [c for c in claims if any(r.path.name in again for side in sides(c, runs) for r in side)]
    declared = {v.claim.id: v for v in evaluate_claims(claims, runs)}
    retrained = {v.claim.id: v for v in evaluate_claims(claims, runs, runs_of={c.id: swapped for c in touched})}
    print(f"{len(again)} runs of {args.retrained} in place of the study's: {', '.join(sorted(again))}")
    print("| claim | runs replaced (candidate, baseline) | declared (candidate / baseline mean, difference "
          "[interval], verdict) | with the runs trained again |")
    print("|---|---|---|---|")
    for c in touched:
        counts = ", ".join(str(sum(r.path.name in again for r in side)) for side in sides(c, runs))
        print(f"| {c.id} | {counts} | {cell(declared[c.id])} | {cell(retrained[c.id])} |")


if __name__ == "__main__":
    main()
