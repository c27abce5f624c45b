"""The verdict rule of ``ctbench report --claims`` on simulated studies (issue 21's "Done when"): the family
error rate, interval coverage with seed noise and on HD95-like skewed data, the exact sign-flip p, and a
C7g-like claim (both losses score ~0) reading "no practical difference".

Simulated with the spreads measured in the CPU study (docs/survey-reproduction.md, 40 test cases): a U-Net's
foreground Dice moves with the seed by SD 0.0064 (seeds 0-2 of C8's cells), and the per-case Dice difference
of two single-seed models has SD ~0.018 (C2a's interval, +-0.0055 over 40 cases).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ctbench.reports.claims import judge
from ctbench.reports.statistics import hierarchical_test, holm, seeds_for_power, sign_flip_p

CASES = 40
SEED_SD = 0.0064  # run-mean SD over seeds
CASE_SEED_SD = 0.018 / np.sqrt(2)  # a run's per-case deviation: two single-seed arms differ by SD 0.018


def null_runs(rng: np.random.Generator, claims: int, seeds: int, seed_sd: float = SEED_SD) -> np.ndarray:
    """``(claims, seeds, cases)`` Dice values of one arm; both arms share the per-case truth level."""
    level = np.linspace(0.6, 0.95, CASES)
    return (level + rng.normal(0, seed_sd, size=(claims, seeds, 1))
            + rng.normal(0, CASE_SEED_SD, size=(claims, seeds, CASES)))


def covered(results: np.ndarray, truth: float = 0.0) -> float:
    return float(np.mean([r.low <= truth <= r.high for r in results.ravel()]))


def test_sign_flip_p_is_exact_with_zeros_and_ties():
    # C7g: 33 cases where both losses score 0, 7 with -5e-5: 2 of the 2^7 sign patterns of the 7 non-zero
    # differences reach |sum| (scipy's wilcoxon falls back to the normal approximation here: 0.0082)
    assert sign_flip_p([0.0] * 33 + [-5e-5] * 7) == 0.015625
    assert sign_flip_p([1, 2, 3, 4, 5, 6]) == 2 / 64
    # |sum| >= 17 of 21: no sign, the 1 or the 2 flipped, and their mirrors
    assert sign_flip_p([1, -2, 3, 4, 5, 6]) == pytest.approx(6 / 64)
    assert sign_flip_p([0.0, 0.0]) == 1.0


def test_sign_flip_p_monte_carlo_beyond_the_exact_limit():
    x = np.random.default_rng(3).normal(0.3, 1.0, size=40)
    from scipy.stats import ttest_1samp

    assert sign_flip_p(x) == pytest.approx(ttest_1samp(x, 0).pvalue, abs=0.02)  # large-sample agreement


def test_c7g_like_claim_is_no_practical_difference():
    # 3 seeds per arm, both predicting no lesion: 0 on 33 cases, the candidate -5e-5 below on 7
    baseline = np.zeros((3, CASES))
    candidate = np.zeros((3, CASES))
    candidate[:, :7] = -5e-5
    test = hierarchical_test(candidate, baseline, level=1 - 0.05 / 24)
    assert judge(test, "higher", margin=0.05) == "no practical difference"


def test_interval_and_p_never_disagree():
    rng = np.random.default_rng(11)
    a = null_runs(rng, 300, 3) + rng.normal(0, 0.006, size=(300, 1, 1))  # some true differences
    results = hierarchical_test(a, null_runs(rng, 300, 3), level=0.99, n_resamples=999)
    for r in results:
        assert (r.low > 0 or r.high < 0) <= (r.p <= 0.01)


def test_coverage_with_seed_noise_and_no_true_difference():
    rng = np.random.default_rng(0)
    results = hierarchical_test(null_runs(rng, 400, 3, seed_sd=0.01), null_runs(rng, 400, 3, seed_sd=0.01),
                                level=0.95, n_resamples=999)
    assert covered(results) >= 0.93


@pytest.mark.parametrize("kind", ["lognormal", "misses"])
def test_coverage_on_hd95_like_skewed_nulls(kind):
    """HD95 per case: lognormal around 4.5 mm (sigma 0.8: the 95th percentile near 17 mm), or with 10 % of
    the cases a miss counted at a 300 mm image diagonal; one run per arm, no true difference. The percentile
    bootstrap covers 0.91-0.93 on such data (it excludes 0 in 7-9 % of null data sets); the studentized
    interval 0.96-0.97 (0.975 at sigma 1.0: on the safe side)."""
    rng = np.random.default_rng(5)
    shape = (1000, 1, CASES)

    def arm():
        values = rng.lognormal(1.5, 0.8 if kind == "lognormal" else 0.6, size=shape)
        return values if kind == "lognormal" else np.where(rng.random(shape) < 0.1, 300.0, values)

    assert 0.93 <= covered(hierarchical_test(arm(), arm(), level=0.95, n_resamples=1999)) <= 0.97


@pytest.mark.slow
def test_family_of_24_null_claims_rarely_gives_a_decisive_verdict():
    """500 families of 24 claims, 3 seeds per arm, no true difference: the share of families with any
    reproduced/contradicted verdict, and with any interval excluding 0, is at most 0.06 (nominal 0.05)."""
    rng = np.random.default_rng(21)
    families, m = 500, 24
    results = hierarchical_test(null_runs(rng, families * m, 3), null_runs(rng, families * m, 3),
                                level=1 - 0.05 / m, n_resamples=999).reshape(families, m)
    decisive = [any(judge(r, "higher", 0.02) in ("reproduced", "contradicted") for r in fam) for fam in results]
    excludes = [any(r.low > 0 or r.high < 0 for r in fam) for fam in results]
    holm_rejects = [any(p <= 0.05 for p in holm({str(i): r.p for i, r in enumerate(fam)}).values())
                    for fam in results]
    assert np.mean(decisive) <= 0.06
    assert np.mean(excludes) <= np.mean(holm_rejects) <= 0.06


def test_family_share_on_a_small_run():
    """The fast tier's version of the test above: 40 families of 24, the same spreads."""
    rng = np.random.default_rng(22)
    results = hierarchical_test(null_runs(rng, 40 * 24, 3), null_runs(rng, 40 * 24, 3), level=1 - 0.05 / 24,
                                n_resamples=499).reshape(40, 24)
    assert np.mean([any(r.low > 0 or r.high < 0 for r in fam) for fam in results]) <= 0.06


def test_seeds_for_power_by_hand():
    from scipy.stats import norm, t

    # no case variance, seed SD 0.01, margin 0.02: se(k) = 0.01 sqrt(2 / k); the first k whose
    # 0.02 / se(k) reaches t_{2k-2, 0.975} + z_0.8
    want = next(k for k in range(2, 100) if 0.02 / (0.01 * np.sqrt(2 / k)) >= t.ppf(0.975, 2 * k - 2) + norm.ppf(0.8))
    assert want == 5 and seeds_for_power(0.0, 1e-4, 40, 0.02, 0.05) == want
    assert seeds_for_power(1.0, 1e-4, 40, 0.02, 0.05) == np.inf  # the cases alone are too noisy
    z = norm.ppf(0.975) + norm.ppf(0.8)
    assert seeds_for_power(0.0, 1.0, 40, 0.02, 0.05) == np.ceil(2 / (0.02 / z) ** 2)  # > 1000: normal approx.
    assert np.isnan(seeds_for_power(0.0, np.nan, 40, 0.02, 0.05))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero when nothing varies
        assert seeds_for_power(0.0, 0.0, 40, 0.02, 0.05) == 2


def test_holm_over_a_fixed_family():
    # two tested claims of a family of four: the untested ones count as p = 1
    assert holm({"a": 0.01, "b": 0.02}, family_size=4) == pytest.approx({"a": 0.04, "b": 0.06})


def test_an_interval_of_a_unit_metric_is_cut_at_its_range():
    """One collapsed seed in a 3-seed arm (C21c, 4 Dec): at the family's level the t floor (4 degrees of freedom)
    times a seed-dominated standard error gave a Dice difference [-2.50, +2.95]. A difference of two values in
    [0, 1] lies in [-1, 1]: the interval is cut there; a distance metric's is not; the verdict does not move."""
    from ctbench.reports.claims import within_range

    dice = np.array([[0.8] * 40, [0.8] * 40, [0.02] * 40]) + np.linspace(0, 0.01, 40)
    other = np.full((3, 40), 0.75) + np.linspace(0, 0.01, 40)[::-1]
    test = hierarchical_test(dice, other, level=1 - 0.05 / 66)
    assert test.low < -1 and test.high > 1  # the uncut interval: wider than the metric allows
    cut = within_range(test, ("dice",))
    assert (cut.low, cut.high) == (-1.0, 1.0) and cut.estimate == test.estimate and cut.p == test.p
    assert judge(cut, "higher", 0.02) == judge(test, "higher", 0.02) == "inconclusive"
    assert within_range(test, ("hd95",)) == test
    assert within_range(test, ("lesion_recall_small", "lesion_recall_large")).high == 1.0
