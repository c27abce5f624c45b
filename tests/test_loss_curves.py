"""``ctbench loss-curves``: the widened Figure 9 (paths of predictions, monotone fractions, PNG + CSVs)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import ndimage

from ctbench.cli import main
from ctbench.reports import loss_curves
from ctbench.reports.loss_curves import PredictionPath


def test_error_counts_only_false_negatives():
    # n = 16, FN = round(16 (1 - t)) for t = 1, 0.9, ..., 0; the path ends at FN = n (IoU 0)
    assert loss_curves.error_counts(16, 100, 0.0) == [(0, fn) for fn in (0, 2, 3, 5, 6, 8, 10, 11, 13, 14, 16)]


def test_error_counts_only_false_positives_stop_where_the_image_is_full():
    # FP = round(16 (1 - t) / t): 0, 1.8, 4, 6.9, 10.7, 16, 24, 37.3, 64; t = 0.1 needs 144 > 100 background
    assert loss_curves.error_counts(16, 100, 1.0) == [(fp, 0) for fp in (0, 2, 4, 7, 11, 16, 24, 37, 64)]


def test_error_counts_mixed_share_gives_the_target_iou():
    n = 1600
    for fp, fn in loss_curves.error_counts(n, 8400, 0.25)[1:]:
        errors = fp + fn
        assert fp / errors == pytest.approx(0.25, abs=1e-3)
    ious = [(n - fn) / (n + fp) for fp, fn in loss_curves.error_counts(n, 8400, 0.25)]
    assert ious == pytest.approx(list(loss_curves.IOU_TARGETS), abs=1e-3)


def test_error_orders_boundary_first(monkeypatch):
    monkeypatch.setattr(loss_curves, "IMAGE_SIDE", 7)
    truth = loss_curves.square(3)  # rows/cols 2..4
    fn_order, fp_order = loss_curves.error_orders(truth)
    assert len(fn_order) == 9 and fn_order[-1] == 3 * 7 + 3  # the centre goes last
    first_fp = {divmod(int(i), 7) for i in fp_order[:12]}  # the 12 edge neighbours before the corners
    assert first_fp == {(1, 2), (1, 3), (1, 4), (5, 2), (5, 3), (5, 4), (2, 1), (3, 1), (4, 1), (2, 5), (3, 5), (4, 5)}


@pytest.mark.parametrize(
    "iou,values,expected",
    [
        ([0.0, 0.5, 1.0], [3.0, 2.0, 1.0], True),
        ([0.0, 0.5, 1.0], [3.0, 3.0, 1.0], True),
        ([0.0, 0.5, 1.0], [3.0, 1.0, 2.0], False),
        ([1.0, 0.5, 0.0], [1.0, 2.0, 3.0], True),  # order of the points does not matter
        ([0.0, 0.0, 1.0], [1.0, 2.0, 0.5], True),  # equal IoU: not compared
        ([0.0, 0.0, 1.0], [1.0, 2.0, 1.5], False),  # 1.5 at IoU 1 is above 1.0 at IoU 0
    ],
)
def test_is_monotone(iou, values, expected):
    assert loss_curves.is_monotone(iou, values) is expected


def test_blurred_tiny_object_makes_cross_entropy_prefer_the_miss():
    """A 1-pixel object predicted at 0.6, blurred: CE by hand (mean of -log p of the true class)."""
    losses = {"ce": loss_curves.load_losses()["ce"]}
    result = loss_curves.evaluate(PredictionPath("tiny", 1, 0.6, 0.0, 1.5, None), losses)
    assert result.iou == [1.0, 0.0] and (result.fp, result.fn) == ([0, 0], [0, 1])
    truth = loss_curves.square(1)
    prob = ndimage.gaussian_filter(np.where(truth == 1, 0.6, 0.4), 1.5, mode="nearest")
    hit = -np.mean(np.where(truth == 1, np.log(prob), np.log1p(-prob)))
    miss = -((truth.size - 1) * math.log(0.6) + math.log(0.4)) / truth.size
    assert result.values["ce"] == pytest.approx([hit, miss], rel=1e-5)
    assert miss < hit  # the blur spills onto 10^4 background pixels: predicting nothing costs less
    sharp = loss_curves.evaluate(PredictionPath("tiny", 1, 0.6, 0.0, 0.0, None), losses)
    assert loss_curves.is_monotone(sharp.iou, sharp.values["ce"])


@pytest.fixture
def small_figure(monkeypatch):
    monkeypatch.setattr(loss_curves, "IMAGE_SIDE", 24)
    monkeypatch.setattr(loss_curves, "OBJECTS", {"large": 10, "tiny": 1})
    monkeypatch.setattr(loss_curves, "CONFIDENCES", (0.9, None))
    monkeypatch.setattr(loss_curves, "FP_SHARES", (0.0, 0.5, 1.0))
    monkeypatch.setattr(loss_curves, "NOISE_SEEDS", (0,))


def test_run_cli_writes_png_csvs_and_table(tmp_path, small_figure, capsys):
    out = tmp_path / "out"
    assert main(["loss-curves", str(out)]) == 0  # the command line, on the small figure
    png = (out / "loss_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    rows = list(csv.DictReader((out / "loss_curves.csv").open()))
    names = [p.stem for p in sorted(loss_curves.loss_config_dir().glob("*.yaml"))]
    assert {f"loss_{name}" for name in names} <= set(rows[0])
    n_paths = 2 * 2 * 3 * 2 * 2  # objects x confidences x shares x blur x (no noise, one seed)
    assert len({tuple(r[k] for k in list(r)[:6]) for r in rows}) == n_paths
    for r in rows:
        n = int(r["object_voxels"])
        fp, fn = int(r["false_positives"]), int(r["false_negatives"])
        assert float(r["iou"]) == pytest.approx((n - fn) / (n + fp), abs=1e-6)
        assert all(math.isfinite(float(r[f"loss_{name}"])) for name in names)
    hard = [r for r in rows if r["confidence"] == "hard" and r["object"] == "large" and r["blur_sigma"] == "0"
            and r["noise_seed"] == "" and r["iou"] == "1.000000"]
    assert float(hard[0]["loss_ce"]) == pytest.approx(1e-6, rel=0.1)  # -log(1 - 1e-6) per pixel, in float32

    monotone = list(csv.DictReader((out / "loss_monotone.csv").open()))
    assert len(monotone) == len(names) * n_paths
    # the measured finding of docs/losses.md: on sharp predictions every loss is monotone on every path, except
    # hausdorff_dt, whose weight d_q follows the prediction's own boundary (and is 0 for an empty or full one)
    assert all(r["monotone"] == "1" for r in monotone if r["blur_sigma"] == "0" and r["loss"] != "hausdorff_dt")
    ce_tiny = [r for r in monotone if r["loss"] == "ce" and r["object"] == "tiny" and r["blur_sigma"] != "0"
               and r["fp_share"] == "0" and r["confidence"] == "0.9"]
    assert ce_tiny and all(r["monotone"] == "0" for r in ce_tiny)
    text = capsys.readouterr().out
    assert "monotone" in text and "focal" in text and "loss_monotone.csv" in text
