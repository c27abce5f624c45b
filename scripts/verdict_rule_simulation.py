"""The verdict rule of ``ctbench report --claims`` on simulated studies: the numbers of docs/report-format.md.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/verdict_rule_simulation.py     # about 40 s on one core

Family error rate (500 families of 24 null claims, 3 seeds per side, the CPU study's spreads), 95 %
coverage with seed SD 0.01, and studentized vs percentile bootstrap coverage on HD95-like nulls; the
simulated data are those of tests/test_verdict_rule.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ctbench.reports.claims import judge  # noqa: E402
from ctbench.reports.statistics import hierarchical_test, holm  # noqa: E402
from test_verdict_rule import CASES, covered, null_runs  # noqa: E402


def main() -> None:
    rng = np.random.default_rng(21)
    fams = hierarchical_test(null_runs(rng, 500 * 24, 3), null_runs(rng, 500 * 24, 3), level=1 - 0.05 / 24,
                             n_resamples=999).reshape(500, 24)
    print("families with a decisive verdict",
          np.mean([any(judge(x, "higher", 0.02) in ("reproduced", "contradicted") for x in f) for f in fams]))
    print("families with an interval excluding 0", np.mean([any(x.low > 0 or x.high < 0 for x in f) for f in fams]))
    print("families with a Holm p <= 0.05",
          np.mean([any(p <= 0.05 for p in holm({str(i): x.p for i, x in enumerate(f)}).values()) for f in fams]))
    rng = np.random.default_rng(0)
    print("coverage, seed SD 0.01", covered(hierarchical_test(null_runs(rng, 400, 3, seed_sd=0.01),
                                                              null_runs(rng, 400, 3, seed_sd=0.01), n_resamples=999)))
    for kind in ("lognormal", "misses"):
        rng = np.random.default_rng(5)
        shape = (1000, 1, CASES)

        def arm(kind: str = kind, rng: np.random.Generator = rng, shape: tuple = shape) -> np.ndarray:
            values = rng.lognormal(1.5, 0.8 if kind == "lognormal" else 0.6, size=shape)
            return values if kind == "lognormal" else np.where(rng.random(shape) < 0.1, 300.0, values)

        a, b = arm(), arm()
        d = (a - b)[:, 0, :]
        means = d[:, np.random.default_rng(0).integers(0, CASES, size=(1999, CASES))].mean(axis=2)
        low, high = np.quantile(means, [0.025, 0.975], axis=1)
        print(f"HD95-like ({kind}) coverage: studentized",
              covered(hierarchical_test(a, b, level=0.95, n_resamples=1999)),
              "percentile", np.mean((low <= 0) & (0 <= high)))


if __name__ == "__main__":
    main()
