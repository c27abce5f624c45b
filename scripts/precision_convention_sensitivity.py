"""The study's precision claims judged again with lesion-wise precision 0, not undefined, on a case whose
prediction has no lesion component while its truth has one (Metrics Reloaded's PPV of an empty prediction),
beside the declared verdicts; a sensitivity analysis, never the verdicts.

Voxel precision reads 0 there since 6 Dec 2026 (``ctbench.metrics.with_worst_case``); lesion-wise precision is
still undefined (NaN) there by the declared rule, and a claim leaves a case out unless every run of both sides
defines it, so C16d (weighted CE beta 0.5, which predicts no lesion on many cases) is not evaluable. Judged in the
whole declared family (every claim file, m as in the doc), from the complete runs below ``multirun/claims``:

    PYTHONPATH=src .venv/bin/python scripts/precision_convention_sensitivity.py
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path

from ctbench.reports.claims import HierarchicalResult, Verdict, evaluate_claims, load_claims, verdict_label
from ctbench.reports.collect import Run, collect
from ctbench.study import CLAIMS_DIR


def empty_prediction_as_zero(run: Run, column: str = "lesion_precision") -> tuple[Run, int]:
    """A copy of ``run`` whose ``column`` reads 0 where the prediction is empty and the truth is not; how many
    cells that changed."""
    table = dict(run.values.get(column, {}))
    changed = 0
    for key, value in table.items():
        if run.values["pred_voxels"].get(key) == 0 < run.values["truth_voxels"].get(key, 0) and value != 0:
            table[key] = 0.0
            changed += 1
    out = copy.copy(run)
    out.values = {**run.values, column: table}
    return out, changed


def cell(v: Verdict) -> str:
    t: HierarchicalResult | None = v.test
    interval = f" {t.estimate:+.3f} [{t.low:+.3f}, {t.high:+.3f}]" if t else ""
    means = "" if math.isnan(v.candidate_mean) else f"{v.candidate_mean:.3f} / {v.baseline_mean:.3f}"
    return f"{means}{interval}, {verdict_label(v)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", nargs="?", type=Path, default=Path("multirun/claims"))
    args = parser.parse_args()
    runs = [r for r in collect([args.study_dir])[0] if "report" not in r.path.relative_to(args.study_dir).parts]
    claims = load_claims(CLAIMS_DIR)
    ids = [c.id for c in claims if c.metric == "lesion_precision"]
    replaced = [empty_prediction_as_zero(r) for r in runs]
    declared = {v.claim.id: v for v in evaluate_claims(claims, runs)}
    again = {v.claim.id: v for v in evaluate_claims(claims, runs, runs_of={i: [r for r, _ in replaced] for i in ids})}
    print(f"{len(runs)} runs, {sum(n for _, n in replaced)} lesion_precision cells read 0 instead of undefined")
    print("| claim | declared (candidate / baseline mean, difference [interval], verdict) | empty prediction = 0 |")
    print("|---|---|---|")
    for i in ids:
        print(f"| {i} | {cell(declared[i])} | {cell(again[i])} |")


if __name__ == "__main__":
    main()
