"""The paired protocol of ``ctbench report`` on hand-computed cases and against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctbench.reports.statistics import hierarchical_test, holm, paired_comparison, rank_biserial, sign_flip_p


def test_rank_biserial_by_hand():
    assert rank_biserial([1, -2, 3, 4, 5, 6]) == pytest.approx((19 - 2) / 21)
    assert rank_biserial([0, 1, -2]) == pytest.approx((1 - 2) / 3)  # the zero is dropped, as in Wilcoxon
    assert rank_biserial([1, -1, 2]) == pytest.approx((1.5 + 3 - 1.5) / 6)  # tied |d| share rank 1.5
    assert rank_biserial([-0.1, -0.2]) == -1.0
    assert rank_biserial([0, 0]) == 0.0


def test_holm_by_hand():
    # sorted: a .01 x 3 = .03; c .03 x 2 = .06; b .04 x 1 = .04 -> raised to .06 (monotone)
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": math.nan})
    assert adjusted["a"] == pytest.approx(0.03)
    assert adjusted["c"] == pytest.approx(0.06)
    assert adjusted["b"] == pytest.approx(0.06)
    assert math.isnan(adjusted["d"])
    assert holm({"a": 0.6, "b": 0.7}) == {"a": 1.0, "b": 1.0}


def test_paired_comparison_numbers():
    candidate = {"c1": 0.9, "c2": 0.8, "c3": 0.75, "c4": 0.95, "c5": 0.7, "c6": math.nan}
    baseline = {"c1": 0.85, "c2": 0.81, "c3": 0.7, "c4": 0.9, "c5": 0.6, "c6": 0.5}
    r = paired_comparison(candidate, baseline)
    diffs = [0.9 - 0.85, 0.8 - 0.81, 0.75 - 0.7, 0.95 - 0.9, 0.7 - 0.6]  # c6 dropped (NaN on one side)
    assert r.n == 5
    assert r.mean_diff == pytest.approx(sum(diffs) / 5)
    assert r.median_diff == pytest.approx(0.05)
    want = hierarchical_test(np.array([[0.9, 0.8, 0.75, 0.95, 0.7]]), np.array([[0.85, 0.81, 0.7, 0.9, 0.6]]))
    assert (r.ci_low, r.ci_high) == pytest.approx((want.low, want.high))
    assert r.p == sign_flip_p(diffs) == pytest.approx(4 / 32)  # |sum| >= 0.24: as observed, the -0.01 flipped, mirrors
    assert r.effect == pytest.approx(rank_biserial(diffs))
    assert "p < 0.05 is impossible" in r.note  # 2 / 2^5 = 0.0625


def test_paired_comparison_refuses_different_cases():
    r = paired_comparison({"a": 1.0, "b": 1.0}, {"a": 1.0})
    assert r.n == 0 and math.isnan(r.p) and "cases differ" in r.note
