#!/usr/bin/env python
"""Null calibration of ``compare: strata`` claims (docs/report-format.md): how often the interval excludes 0.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/strata_rule_simulation.py     # about a minute (one thread)

A strata claim tests each run's per-case differences (candidate column minus baseline column) against zeros
with :func:`ctbench.reports.statistics.hierarchical_test`, whose Student floor keeps ``2k - 2`` degrees of
freedom although the differences' seed part has ``k - 1``. Under no true difference, with the sizes of C24
(3 runs, 17 paired cases), the per-case differences are ``u_r + e_ri``: a run's own stratum effect
``u_r ~ N(0, tau)`` (the seed part) plus case noise ``e_ri ~ N(0, sd)``. Printed: the share of 4000 simulated
claims whose 0.95 interval excludes 0 (nominal 0.05), from case noise only to a seed part that dominates.
"""

from __future__ import annotations

import numpy as np

from ctbench.reports.statistics import hierarchical_test

RUNS, CASES, SIMULATIONS = 3, 17, 4000
SETTINGS = ((0.0, 0.4), (0.1, 0.4), (0.2, 0.4), (0.3, 0.1), (0.5, 0.05))  # (tau, sd)


def main() -> None:
    rng = np.random.default_rng(0)
    for tau, sd in SETTINGS:
        diffs = rng.normal(0, tau, (SIMULATIONS, RUNS, 1)) + rng.normal(0, sd, (SIMULATIONS, RUNS, CASES))
        results = hierarchical_test(diffs, np.zeros((RUNS, CASES)), level=0.95, n_resamples=1000).ravel()
        rate = np.mean([r.low > 0 or r.high < 0 for r in results])
        print(f"tau {tau:.2f}, case sd {sd:.2f} (seed part / case part of se^2 = "
              f"{tau**2 / RUNS / (sd**2 / RUNS / CASES):.3g}): interval excludes 0 in {rate:.3f} of {SIMULATIONS}")


if __name__ == "__main__":
    main()
