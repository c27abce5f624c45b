"""``ctbench loss-curves``: survey Figure 9 remade (PNG + CSV + monotonicity table)."""

from __future__ import annotations

import argparse
import csv
import math

import numpy as np
import pytest

from ctbench.reports import loss_curves


@pytest.mark.parametrize("side,errors", [(4, 0), (4, 6), (8, 64), (8, 13)])
def test_sliding_prediction_swaps_equal_fp_and_fn(side, errors):
    truth, pred = loss_curves.sliding_prediction(side, errors)
    n = side * side
    assert truth.sum() == pred.sum() == n
    assert ((truth == 1) & (pred == 0)).sum() == errors  # false negatives
    assert ((truth == 0) & (pred == 1)).sum() == errors  # false positives
    inter = ((truth == 1) & (pred == 1)).sum()
    assert inter / (2 * n - inter) == pytest.approx((n - errors) / (n + errors))


def test_error_counts_span_iou_zero_to_one():
    counts = loss_curves.error_counts(64, points=11)
    assert counts[0] == 0 and counts[-1] == 64 and counts == sorted(set(counts))


@pytest.mark.parametrize(
    "values,expected",
    [([3.0, 2.0, 1.0], True), ([3.0, 3.0, 1.0], True), ([3.0, 1.0, 2.0], False), ([1.0, 2.0, 3.0], False)],
)
def test_is_monotone(values, expected):
    # IoU ascending: a good loss falls
    assert loss_curves.is_monotone([0.0, 0.5, 1.0], values) is expected


@pytest.fixture
def small_figure(monkeypatch):
    monkeypatch.setattr(loss_curves, "IMAGE_SIDE", 40)
    monkeypatch.setattr(loss_curves, "OBJECTS", {"large": 16, "small": 4})
    monkeypatch.setattr(loss_curves, "N_IOU", 9)


def test_run_cli_writes_png_csv_and_table(tmp_path, small_figure, capsys):
    assert loss_curves.run_cli(argparse.Namespace(out_dir=str(tmp_path / "out"))) == 0
    png = (tmp_path / "out" / "loss_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    rows = list(csv.DictReader((tmp_path / "out" / "loss_curves.csv").open()))
    names = [p.stem for p in loss_curves.loss_config_dir().glob("*.yaml")]
    assert len(names) == 14 and {f"loss_{name}" for name in names} <= set(rows[0])
    for obj in ("large", "small"):
        sub = [r for r in rows if r["object"] == obj]
        iou = [float(r["iou"]) for r in sub]
        assert iou[0] == 1.0 and iou[-1] == 0.0 and 5 <= len(sub) <= 9
        assert all(r["false_positives"] == r["false_negatives"] for r in sub)
        values = {name: np.array([float(r[f"loss_{name}"]) for r in sub]) for name in names}
        assert all(np.isfinite(v).all() for v in values.values())
        # every voxel has p̂ of its true class = 0.99 at IoU 1, 0.01 on the swapped voxels
        assert values["ce"][0] == pytest.approx(-math.log(0.99), rel=1e-4)
        n = 16 * 16 if obj == "large" else 16
        assert values["ce"][-1] == pytest.approx(-math.log(0.99) + 2 * n / 1600 * math.log(99), rel=1e-4)
        for name in ("dice", "iou", "tversky", "combo", "focal", "ce"):
            assert loss_curves.is_monotone(iou, list(values[name]))
            assert values[name][-1] > values[name][0]
    out = capsys.readouterr().out
    assert "monotone" in out and "focal" in out and "loss_curves.png" in out
