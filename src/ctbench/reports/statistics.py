"""The comparison protocol of ``ctbench report``: paired per-case differences against a baseline.

For two groups of runs (a pair and the baseline, or the two sides of a claim) each case's value is
first averaged over the group's runs (seeds, folds), then the per-case differences
``d_i = candidate_i - baseline_i`` are summarised by

- their mean and a **bootstrap 95 % confidence interval** of the mean: percentile interval of
  ``N_RESAMPLES`` case resamples (Efron & Tibshirani 1993, ch. 13), NumPy generator seeded with
  ``SEED``, so a report is reproducible to the last digit;
- the two-sided **Wilcoxon signed-rank** p-value (``scipy.stats.wilcoxon`` defaults: zero
  differences dropped, exact distribution for small samples);
- the **matched-pairs rank-biserial correlation** ``r = (W+ - W-) / (W+ + W-)`` as effect size
  (Kerby 2014, Comprehensive Psychology 3:11): the share of the signed-rank sum favouring the
  candidate minus the share favouring the baseline, in [-1, 1];
- **Holm's** step-down correction (Holm 1979) across all the comparisons of one report.

scipy is imported inside the functions, so ``ctbench --help`` stays fast.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95
N_RESAMPLES = 10_000
SEED = 0


@dataclass
class PairedResult:
    """One paired comparison; NaN fields where it could not be computed (``note`` says why)."""

    n: int = 0
    mean_diff: float = math.nan
    median_diff: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p: float = math.nan
    p_holm: float = math.nan
    effect: float = math.nan
    note: str = ""


def bootstrap_ci(diffs: Sequence[float], confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                 seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs``: resample the cases with replacement
    ``n_resamples`` times, take the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of
    the resampled means (NumPy's default linear interpolation)."""
    x = np.asarray(diffs, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def wilcoxon_p(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of ``diffs`` (``scipy.stats.wilcoxon`` defaults);
    1.0 when every difference is zero."""
    if all(d == 0 for d in diffs):
        return 1.0
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about ties and small samples; the p-value stands
        return float(wilcoxon(diffs).pvalue)


def rank_biserial(diffs: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation ``(W+ - W-) / (W+ + W-)`` over the non-zero differences,
    ranked by absolute value (ties get their mean rank); 0 when every difference is zero."""
    from scipy.stats import rankdata

    x = np.asarray([d for d in diffs if d != 0], dtype=np.float64)
    if x.size == 0:
        return 0.0
    ranks = rankdata(np.abs(x))
    return float((ranks[x > 0].sum() - ranks[x < 0].sum()) / ranks.sum())


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values: the i-th smallest of m p-values becomes
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``. NaN entries are left out and stay NaN."""
    tested = sorted((p, k) for k, p in pvalues.items() if not math.isnan(p))
    out = {k: math.nan for k in pvalues}
    running = 0.0
    for i, (p, k) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - i) * p))
        out[k] = running
    return out


def paired_comparison(candidate: Mapping[str, float], baseline: Mapping[str, float]) -> PairedResult:
    """Compare per-case values (already averaged over seeds) of a candidate against a baseline.

    Tested only when both scored the same cases; cases where either side is NaN are dropped.
    """
    if set(candidate) != set(baseline):
        return PairedResult(note=f"not tested: cases differ ({len(candidate)} vs {len(baseline)} in the baseline)")
    cases = [c for c in sorted(candidate) if not (math.isnan(candidate[c]) or math.isnan(baseline[c]))]
    if not cases:
        return PairedResult(note="not tested: no case with a value on both sides")
    diffs = [candidate[c] - baseline[c] for c in cases]
    low, high = bootstrap_ci(diffs)
    note = ""
    if all(d == 0 for d in diffs):
        note = "identical on every case"
    elif 2.0 / 2 ** len(cases) > ALPHA:
        note = f"only {len(cases)} paired cases: p < {ALPHA} is impossible"
    return PairedResult(n=len(cases), mean_diff=math.fsum(diffs) / len(diffs), median_diff=float(np.median(diffs)),
                        ci_low=low, ci_high=high, p=wilcoxon_p(diffs), effect=rank_biserial(diffs), note=note)


def adjust(results: Mapping[str, PairedResult]) -> None:
    """Set ``p_holm`` of every result, Holm's correction across all of them."""
    adjusted = holm({key: r.p for key, r in results.items()})
    for key, result in results.items():
        result.p_holm = adjusted[key]
