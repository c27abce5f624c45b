"""The study's claims judged again with runs trained again, beside the declared verdicts; a sensitivity
analysis or a replication, never the verdicts.

The folder holds complete runs named as the study's jobs (``MODEL-LOSS-DIMSd-seedS[TAG]``):

- a run with the name of one of the study's takes its place in every claim that reads it, judged in the whole
  declared family (``multirun/claims_same_code``: the runs of the sides trained before commit ba3ec25, trained
  again with today's code, its ``run.sh``);
- a run with a new name, another seed of a study arm, is added: each claim with such runs on both sides is judged
  on them alone (a replication on fresh seeds) and on them pooled with the study's runs (the whole declared
  family) (``multirun/claims_fresh_seeds``: the arms of the decisive verdicts with seeds 3-5, its ``run.sh``).
  A folder may hold both (``multirun/claims_test_time/final``: seeds 0-2 tested again, seeds 3-5 new): the runs in
  place of the study's are judged without the added ones, and the pooled column holds both.
  The replication's family is ``--family`` (claim ids, e.g. ``C8 C18a``; those without new runs yet count in it,
  not evaluable, as claim files without runs do in the study's), else the claims with new runs on both sides.

``--as-trained`` reads each evaluation run that tested a training run's checkpoint on the test split without
post-processing (``ctbench eval ckpt_path=RUN/checkpoints/last.ckpt postprocess=null``) as a training run
(``task_name=train``). Claims whose selectors ask ``task_name: train`` (C14, C24: so that the study's evaluations of
the same checkpoints, with and without the CRF, are not counted twice) then read it as they read a training run's
own test (``multirun/claims_test_time/final_replay``: DeepLab tested from its final checkpoint).

Several folders are read as one (``multirun/claims_fresh_seeds multirun/claims_fresh_seeds_c1``: C1's arms with
seeds 3-5 and 6-9); a run name in two of them is refused. Read from the complete runs below ``multirun/claims``:

    PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_same_code
    PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_fresh_seeds \
        --family C1a C1b C1c C7b C7d C7f C8 C11a C14b C14c C18a C18b C24b
"""

from __future__ import annotations

import argparse
from pathlib import Path

from precision_convention_sensitivity import cell  # scripts/ is on the path of a script run from it

from ctbench.reports.claims import Verdict, evaluate_claims, load_claims, sides
from ctbench.reports.collect import Run, collect, find_run_dirs
from ctbench.study import CLAIMS_DIR


def shown(v: Verdict) -> str:
    """A verdict's cell, with the reason when it is not evaluable."""
    return cell(v) + (f" ({v.note})" if v.verdict == "not evaluable" else "")


def tested_as_trained(run: Run) -> bool:
    """Whether ``run`` is an evaluation of a checkpoint on the test split without post-processing: what a training
    run's own test is, from another checkpoint."""
    return (run.attribute("task_name") == "eval" and run.attribute("postprocess") == "null"
            and run.attribute("split") == "test" and str(run.summary.get("checkpoint", "")).endswith(".ckpt"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("retrained", type=Path, nargs="+",
                        help="folders of complete runs named as the study's jobs, read as one")
    parser.add_argument("--study", type=Path, default=Path("multirun/claims"), help="the study's folder")
    parser.add_argument("--claims-dir", type=Path, default=CLAIMS_DIR,
                        help="the claim files (default: the study's, configs/claims)")
    parser.add_argument("--family", nargs="+", metavar="CLAIM",
                        help="the replication's family, claim ids (default: the claims with new runs on both sides)")
    parser.add_argument("--as-trained", action="store_true",
                        help="read an evaluation run of a checkpoint on the test split without post-processing as a "
                             "training run (task_name=train), for the claims whose selectors leave evaluations out")
    args = parser.parse_args()
    for folder in args.retrained:
        if not folder.is_dir() or not find_run_dirs(folder):
            raise SystemExit(f"{folder}: no complete run there; train them first (its run.sh)")
    runs = [r for r in collect([args.study])[0] if "report" not in r.path.relative_to(args.study).parts]
    names = {r.path.name for r in runs}
    again = collect(args.retrained)[0]
    twice = sorted({r.path.name for r in again if sum(q.path.name == r.path.name for q in again) > 1})
    if twice:
        raise SystemExit(f"{', '.join(twice)}: in more than one of the folders; give each run once")
    if args.as_trained:
        again = [r.with_override("task_name", "train") if tested_as_trained(r) else r for r in again]
    where = " ".join(map(str, args.retrained))
    replacing = {r.path.name: r for r in again if r.path.name in names}
    added = [r for r in again if r.path.name not in names]
    claims = load_claims(args.claims_dir)
    stray = sorted(r.path.name for r in added if not any(r in side for c in claims for side in sides(c, added)))
    if stray:
        raise SystemExit(f"{where}: {', '.join(stray)} name no run of {args.study} and no claim's side")
    in_place = [replacing.get(r.path.name, r) for r in runs]
    pooled = in_place + added
    replaced = [c for c in claims if any(r.path.name in replacing for side in sides(c, runs) for r in side)]
    touched = [c for c in claims if c in replaced or any(sides(c, added))]
    declared = {v.claim.id: v for v in evaluate_claims(claims, runs)}
    # the runs in place of the study's alone (a folder that also adds runs reports those pooled, below)
    in_place_judged = {v.claim.id: v for v in evaluate_claims(claims, runs, runs_of={c.id: in_place for c in replaced})}
    again_judged = {v.claim.id: v for v in evaluate_claims(claims, runs, runs_of={c.id: pooled for c in touched})}
    if replacing:
        print(f"{len(replacing)} runs of {where} in place of the study's: {', '.join(sorted(replacing))}")
        print("| claim | runs replaced (candidate, baseline) | declared (candidate / baseline mean, difference "
              "[interval], verdict) | with the runs trained again |")
        print("|---|---|---|---|")
        for c in replaced:
            counts = [sum(r.path.name in replacing for r in side) for side in sides(c, runs)]
            print(f"| {c.id} | {', '.join(map(str, counts))} | {shown(declared[c.id])} | "
                  f"{shown(in_place_judged[c.id])} |")
    family = [c for c in claims if c.id.split("-")[0] in args.family] if args.family else \
        [c for c in claims if all(sides(c, added))]
    if args.family and len(family) != len(set(args.family)):
        known = {c.id.split("-")[0] for c in family}
        raise SystemExit(f"--family: no claim file has the id(s) {', '.join(sorted(set(args.family) - known))}")
    replicated = [c for c in family if all(sides(c, added))]
    if replicated:
        alone = {v.claim.id: v for v in evaluate_claims(family, added)}
        waiting = [c.id for c in family if c not in replicated]
        print(f"\n{len(added)} runs of {where} beside the study's; {len(replicated)} claims with new runs on "
              f"both sides, judged on them alone (a family of {len(family)}"
              + (f", with {', '.join(waiting)} not run yet" if waiting else "")
              + f") and pooled (the declared family of {len(claims)})")
        print("| claim | new runs (candidate, baseline) | declared | new runs alone | pooled |")
        print("|---|---|---|---|---|")
        for c in replicated:
            counts = ", ".join(str(len(side)) for side in sides(c, added))
            print(f"| {c.id} | {counts} | {shown(declared[c.id])} | {shown(alone[c.id])} | "
                  f"{shown(again_judged[c.id])} |")


if __name__ == "__main__":
    main()
