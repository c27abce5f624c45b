"""The convergence gate on a redraw: the same run trained twice, its gate's gain and verdict side by side.

The gate (:mod:`ctbench.reports.convergence`) calls a run still improving when the best validation mean Dice of
its last 20 % of epochs beats the best before by more than ``study.plateau`` (0.005). A run of ``AGAIN`` with the
name of a run of ``STUDY`` is the same config and seed trained again (``multirun/claims_same_code``: the same
seeds with today's code, whose training streams differ from the first draw's after the first validation). This
prints both gains and verdicts per pair, then the median and largest absolute difference of the gains and the
pairs whose verdict flips: how much of the gate's 0.005 a redraw alone can move; and how many converged runs of
``STUDY`` pass the gate by less than that median movement (gain within it below their plateau).

With ``--verdicts``, the claims (``configs/claims``, or ``--claims-dir``) are judged on ``STUDY``'s runs, and each
verdict other than *not evaluable* whose sides hold such a run is listed with it: the verdicts a redraw of one
run's training stream could turn *not evaluable* (its arm a tier up), the gate kept as it is. An evaluation run
(the CRF's) is judged by the gate of the training run whose checkpoint it tested, as the verdict rule judges it.

    .venv/bin/python scripts/gate_redraw.py multirun/claims multirun/claims_same_code
    PYTHONPATH=src .venv/bin/python scripts/gate_redraw.py multirun/claims multirun/claims_same_code --verdicts
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def gate(run: Path) -> tuple[float, str, float, float] | None:
    """(gain judged by the gate, its verdict, test mean Dice, plateau) of a complete run, or None."""
    path = run / "report" / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    block = summary.get("convergence") or {}
    if block.get("best_last") is None or block.get("best_before") is None:
        return None
    return (block["best_last"] - block["best_before"], block["verdict"], summary["mean_dice"],
            block.get("plateau", 0.005))


def within(record: tuple[float, str, float, float], median: float) -> bool:
    """Whether a run converged with a gain within ``median`` below its plateau."""
    return record[1] == "converged" and record[3] - median < record[0] <= record[3]


def trained_gate(run: Path, checkpoint: object) -> tuple[float, str, float, float] | None:
    """:func:`gate` of a run, or of the training run whose checkpoint an evaluation run tested (the folder the
    checkpoint names, else the one of that name beside the evaluation's)."""
    if record := gate(run):
        return record
    if not isinstance(checkpoint, str) or not checkpoint.endswith(".ckpt"):
        return None
    trained = Path(checkpoint).parent.parent
    return gate(trained) or gate(run.parent / trained.name)


def near_gate_verdicts(study: Path, claims_dir: Path, median: float) -> None:
    """Print each verdict other than not evaluable whose sides hold a run that converged by less than ``median``."""
    from ctbench.reports.claims import evaluate_claims, load_claims, sides
    from ctbench.reports.collect import collect

    runs = [r for r in collect([study])[0] if "report" not in r.path.relative_to(study).parts]
    claims = load_claims(claims_dir)
    judged = [v for v in evaluate_claims(claims, runs) if v.verdict != "not evaluable"]
    print(f"\n| claim | verdict | runs of its sides that passed the gate by less than {median:.4f} (gain) |")
    print("|---|---|---|")
    listed = []
    for v in judged:
        near = []
        for run in {r.path: r for side in sides(v.claim, runs) for r in side}.values():
            record = trained_gate(run.path, run.summary.get("checkpoint"))
            if record and within(record, median):
                near.append(f"{run.name} ({record[0]:+.4f})")
        if near:
            listed.append(v.claim.id)
            print(f"| {v.claim.id} | {v.verdict} | {', '.join(near)} |")
    decisive = [v for v in judged if v.verdict in ("reproduced", "contradicted")]
    print(f"{len(listed)} of the {len(judged)} verdicts other than not evaluable rest on such a run, "
          f"{sum(v.claim.id in listed for v in decisive)} of the {len(decisive)} reproduced or contradicted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="the study folder (the first draws)")
    parser.add_argument("again", type=Path, help="a folder of the same runs trained again, by the same names")
    parser.add_argument("--verdicts", action="store_true",
                        help="also list the claims' verdicts whose sides hold a run within that median of the gate")
    parser.add_argument("--claims-dir", type=Path, help="the claim files (default: the study's, configs/claims)")
    args = parser.parse_args()
    for folder in (args.study, args.again):
        if not folder.is_dir():
            raise SystemExit(f"{folder} is not a folder: pass the study folder, then the folder of its runs trained again")
    pairs = [(run.name, first, second) for run in sorted(args.again.iterdir())
             if (second := gate(run)) and (first := gate(args.study / run.name))]
    if not pairs:
        raise SystemExit(f"no run of {args.again} has a complete run of the same name in {args.study}: "
                         "pass the study folder, then the folder of its runs trained again")
    print("| run | gain, first | verdict, first | gain, again | verdict, again | test Dice, first / again |")
    print("|---|---:|---|---:|---|---:|")
    for name, first, second in pairs:
        print(f"| {name} | {first[0]:+.4f} | {first[1]} | {second[0]:+.4f} | {second[1]} | "
              f"{first[2]:.3f} / {second[2]:.3f} |")
    change = np.abs([second[0] - first[0] for _, first, second in pairs])
    flips = [name for name, first, second in pairs if first[1] != second[1]]
    print(f"\n{len(pairs)} pairs: the gain moves by {np.median(change):.4f} (median) and {change.max():.4f} (largest) "
          f"on a redraw; the verdict flips on {len(flips)}" + (f" ({', '.join(flips)})" if flips else ""))
    study = [record for run in sorted(args.study.iterdir()) if (record := gate(run))]
    close = [record for record in study if within(record, float(np.median(change)))]
    print(f"{args.study}: {len(close)} of its {len(study)} runs with a gate record converged by less than that median "
          "(a gain within it of the plateau)")
    if args.verdicts:
        from ctbench.study import CLAIMS_DIR
        near_gate_verdicts(args.study, args.claims_dir or CLAIMS_DIR, float(np.median(change)))


if __name__ == "__main__":
    main()
