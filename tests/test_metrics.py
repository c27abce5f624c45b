"""Numeric tests of ctbench.metrics against hand-computed values and MONAI's metric functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ctbench.lesion_metrics import LESION_COLUMNS
from ctbench.metrics import (
    EMPTY_POLICY,
    NSD_TOLERANCE_POLICY,
    PER_CASE_COLUMNS,
    case_metrics,
    read_per_case_csv,
    summarize,
    with_worst_case,
    write_per_case_csv,
)

ONE = {1: "organ"}


def one(pred, truth, spacing=None, tol=1.0):
    spacing = spacing or (1.0,) * truth.ndim
    (row,) = case_metrics(pred, truth, spacing, ONE, tolerance_mm=tol)
    return row


def cube(shape, lo, hi, label=1):
    a = np.zeros(shape, np.int16)
    a[tuple(slice(lo_, hi_) for lo_, hi_ in zip(lo, hi, strict=True))] = label
    return a


def monai_surfels(p, t, spacing, tol):
    """HD95, ASSD and NSD from MONAI's sub-voxel boundary elements and distances
    (``get_edge_surface_distance(use_subvoxels=True)``, torch code apart from ctbench's): the
    area-weighted definitions of docs/report-format.md written out here."""
    import torch
    from monai.metrics.utils import get_edge_surface_distance

    (e_p, e_t), (d_pt, d_tp), (a_p, a_t) = get_edge_surface_distance(
        torch.as_tensor(p.astype(bool)), torch.as_tensor(t.astype(bool)), spacing=list(spacing),
        use_subvoxels=True, symmetric=True)
    d_pt, d_tp, a_p, a_t = (np.asarray(x, np.float64) for x in (d_pt, d_tp, a_p[e_p], a_t[e_t]))

    def q95(d, a):
        cum = np.cumsum(a[np.argsort(d)]) / a.sum()
        return np.sort(d)[min(int(np.searchsorted(cum, 0.95)), d.size - 1)]

    total = a_p.sum() + a_t.sum()
    return {"hd95": max(q95(d_pt, a_p), q95(d_tp, a_t)), "assd": (d_pt @ a_p + d_tp @ a_t) / total,
            "nsd": (a_p[d_pt <= tol + 1e-6].sum() + a_t[d_tp <= tol + 1e-6].sum()) / total}


def test_columns_and_policy_text():
    assert PER_CASE_COLUMNS == ["case", "class", "dice", "iou", "hd95", "assd", "nsd", "sensitivity",
                                "precision", "rve", "truth_voxels", "pred_voxels", "lesions_truth",
                                "lesions_detected", "lesion_fp", "lesion_merged", *LESION_COLUMNS, "diagonal_mm",
                                "nsd_tolerance_mm", "predict_seconds"]
    assert EMPTY_POLICY.startswith("truth and prediction both empty -> dice = iou = nsd = 1")
    assert "hd95_undefined" in EMPTY_POLICY


@pytest.mark.parametrize("shape", [(12, 12), (10, 11, 12)])
def test_identical(shape):
    t = cube(shape, (2,) * len(shape), (7,) * len(shape))
    r = one(t.copy(), t, spacing=(0.5, 2.0, 3.0)[: len(shape)])
    assert set(r) == set(PER_CASE_COLUMNS) - {"case", "predict_seconds"}  # the test loop times the prediction
    assert r["dice"] == 1 and r["iou"] == 1 and r["hd95"] == 0 and r["assd"] == 0 and r["nsd"] == 1
    assert r["sensitivity"] == 1 and r["precision"] == 1 and r["rve"] == 0
    assert r["truth_voxels"] == r["pred_voxels"] == 5 ** len(shape)
    assert r["lesions_truth"] is None and r["lesion_f1"] is None  # an organ is not scored lesion-wise


def test_disjoint():
    t = cube((20, 8, 8), (1, 2, 2), (4, 5, 5))
    p = cube((20, 8, 8), (10, 2, 2), (13, 5, 5))
    r = one(p, t, spacing=(2.0, 1.0, 1.0))
    assert r["dice"] == 0 and r["iou"] == 0 and r["nsd"] == 0
    assert r["sensitivity"] == 0 and r["precision"] == 0 and r["rve"] == 0
    # nearest edges: truth's face at x=3 and prediction's face at x=10 -> 7 voxels * 2 mm
    assert r["hd95"] > 14.0 and r["assd"] >= 14.0


def test_known_overlap_half_shift():
    # 4x4x4 cubes overlapping in 2 of 4 slabs: tp = 32, |T| = |P| = 64
    t = cube((10, 10, 10), (0, 0, 0), (4, 4, 4))
    p = cube((10, 10, 10), (2, 0, 0), (6, 4, 4))
    r = one(p, t)
    assert r["dice"] == pytest.approx(0.5)
    assert r["iou"] == pytest.approx(1 / 3)
    assert r["sensitivity"] == pytest.approx(0.5) and r["precision"] == pytest.approx(0.5)


def test_known_overlap_subset():
    # prediction is half of the truth: dice = 2*32/(64+32) = 2/3, iou = 32/64, rve = -0.5
    t = cube((8, 8, 8), (1, 1, 1), (5, 5, 5))
    p = cube((8, 8, 8), (1, 1, 1), (5, 5, 3))
    r = one(p, t)
    assert r["dice"] == pytest.approx(2 / 3)
    assert r["iou"] == pytest.approx(0.5)
    assert r["sensitivity"] == pytest.approx(0.5) and r["precision"] == 1.0
    assert r["rve"] == pytest.approx(-0.5)
    assert (r["truth_voxels"], r["pred_voxels"]) == (64, 32)


@pytest.mark.parametrize("axis,k", [(0, 3), (1, 2), (2, 3)])
def test_shift_hd95_in_mm_anisotropic(axis, k):
    spacing = (0.7, 1.3, 2.5)
    t = cube((20, 20, 20), (5, 5, 5), (12, 12, 12))
    p = np.roll(t, k, axis=axis)
    r = one(p, t, spacing=spacing)
    assert r["hd95"] == pytest.approx(k * spacing[axis], rel=1e-5)
    assert 0 < r["assd"] < k * spacing[axis]
    assert r["dice"] == pytest.approx((7 - k) / 7)


@pytest.mark.parametrize("axis,k", [(0, 2), (1, 2)])
def test_shift_hd95_2d(axis, k):
    spacing = (0.5, 2.0)
    t = cube((16, 16), (4, 4), (11, 11))
    p = np.roll(t, k, axis=axis)
    r = one(p, t, spacing=spacing)
    assert r["hd95"] == pytest.approx(k * spacing[axis], rel=1e-5)
    assert r["iou"] == pytest.approx((7 - k) / (7 + k))


def planes():
    """Truth: the plane z=2 (1 voxel thick). Prediction: that plane for x<3, the plane z=4 for x>=3.
    Spacing (1, 1, 2) mm. Boundary area pred->truth: 54.3 mm^2 at 0, 27.2 at 2 and 27.2 at 4 mm (the
    moved half's far face); truth->pred: 56.1 at 0, 14.5 at 1, 20.8 at 2, 6.3 at 3 mm (to the
    prediction's x=2 end, closer than the 4 mm jump in z), of 206.3 mm^2 in all."""
    t = np.zeros((6, 6, 8), np.int16)
    t[:, :, 2] = 1
    p = np.zeros_like(t)
    p[:3, :, 2] = 1
    p[3:, :, 4] = 1
    return p, t, (1.0, 1.0, 2.0)


@pytest.mark.parametrize("tol,nsd", [(2.5, 0.837675), (3.0, 0.868403), (3.99, 0.868403), (4.0, 1.0)])
def test_surface_dice_at_tolerance(tol, nsd):
    # NSD steps where the tolerance passes a distance: 3 mm takes in the 6.3 mm^2 at 3 mm, 4 mm the rest
    p, t, sp = planes()
    r = one(p, t, spacing=sp, tol=tol)
    assert r["nsd"] == pytest.approx(nsd, abs=1e-6) == pytest.approx(monai_surfels(p, t, sp, tol)["nsd"])
    assert r["nsd_tolerance_mm"] == tol


@pytest.mark.parametrize("tol", [0.0, 1.0, 2.0])
def test_surface_dice_tolerance_floored_at_the_largest_spacing(tol):
    # spacing (1, 1, 2): a tolerance below 2 mm is raised to 2 mm, which takes in the boundary at 1 and
    # 2 mm (unfloored, NSD would be 0.535 at 0 mm and 0.605 at 1 mm)
    p, t, sp = planes()
    r = one(p, t, spacing=sp, tol=tol)
    assert r["nsd_tolerance_mm"] == 2.0 and r["nsd"] == pytest.approx(0.837675, abs=1e-6)


def test_surface_dice_tolerance_per_class():
    p, t, sp = planes()
    two = {1: "organ", 2: "lesion"}
    p2, t2 = np.concatenate([p, 2 * p]), np.concatenate([t, 2 * t])
    organ, lesion = case_metrics(p2, t2, sp, two, tolerance_mm={"lesion": 3.0, "default": 4.0})
    assert (organ["nsd_tolerance_mm"], organ["nsd"]) == (4.0, 1.0)
    assert (lesion["nsd_tolerance_mm"], lesion["nsd"]) == (3.0, pytest.approx(0.868403, abs=1e-6))
    organ, lesion = case_metrics(p2, t2, sp, two, tolerance_mm={"lesion": 3.0})
    assert organ["nsd_tolerance_mm"] == 2.0  # no default: 1 mm, floored at the 2 mm spacing
    with pytest.raises(ValueError, match="NSD tolerance of 'lesion'"):
        case_metrics(p2, t2, sp, two, tolerance_mm={"lesion": float("nan")})


def test_planes_distances_and_lesions():
    p, t, sp = planes()
    r = one(p, t, spacing=sp)
    # area-weighted mean of the distances in planes(); a quarter of the prediction's area is 4 mm away
    assert r["assd"] == pytest.approx((14.4721 + 2 * 20.8123 + 3 * 6.3402 + 2 * 27.1525 + 4 * 27.1525)
                                      / 206.3313, abs=1e-4)
    assert r["assd"] == pytest.approx(monai_surfels(p, t, sp, 2.0)["assd"], rel=1e-6)
    assert r["hd95"] == pytest.approx(4.0)
    assert r["dice"] == pytest.approx(0.5)


def test_empty_prediction():
    t = cube((8, 8, 8), (2, 2, 2), (5, 5, 5))
    r = one(np.zeros_like(t), t)
    assert r["dice"] == 0 and r["iou"] == 0 and r["nsd"] == 0
    assert math.isnan(r["hd95"]) and math.isnan(r["assd"])
    assert r["diagonal_mm"] == pytest.approx(math.sqrt(3 * 8**2))  # the worst case of the means
    assert r["sensitivity"] == 0  # denominator |T| = 27 > 0
    assert r["precision"] == 0  # |P| = 0 with |T| > 0: Metrics Reloaded's PPV of an empty prediction
    assert r["rve"] == -1.0


def test_empty_truth():
    p = cube((8, 8, 8), (2, 2, 2), (5, 5, 5))
    r = one(p, np.zeros_like(p), spacing=(0.5, 1.0, 2.0))
    assert r["dice"] == 0 and r["iou"] == 0 and r["nsd"] == 0
    assert math.isnan(r["hd95"]) and math.isnan(r["assd"])
    assert r["diagonal_mm"] == pytest.approx(math.sqrt(4**2 + 8**2 + 16**2))
    assert math.isnan(r["sensitivity"]) and r["precision"] == 0  # nothing to find; every predicted voxel is false
    assert math.isnan(r["rve"])


@pytest.mark.parametrize("shape", [(6, 7), (5, 6, 7)])
def test_both_empty(shape):
    z = np.zeros(shape, np.uint8)
    r = one(z, z)
    assert (r["dice"], r["iou"], r["nsd"], r["hd95"], r["assd"]) == (1, 1, 1, 0, 0)
    assert math.isnan(r["sensitivity"]) and math.isnan(r["precision"]) and r["rve"] == 0  # 0/0: Metrics Reloaded
    assert (r["truth_voxels"], r["pred_voxels"]) == (0, 0)


def test_lesion_detection_counts_full_connectivity():
    """A truth lesion touched by one predicted voxel is not detected (IoU 1/27 < 0.1: tests/test_lesion_metrics.py)."""
    t = np.zeros((20, 20, 20), np.uint8)
    t[2:5, 2:5, 2:5] = 1  # blob A, hit by one predicted voxel
    t[10, 10, 10] = 1  # blob B: two voxels touching only at a corner = one component (26-connectivity)
    t[11, 11, 11] = 1
    p = np.zeros_like(t)
    p[4, 4, 4] = 1  # hits A
    p[15:17, 15:17, 15:17] = 1  # false-positive blob
    p[0, 0, 0] = 1  # a second false positive
    p[1, 1, 1] = 1  # ... corner-touching the first: same component
    (r,) = case_metrics(p, t, (1.0, 1.0, 1.0), {1: "lesion"})
    assert (r["lesions_truth"], r["lesions_detected"], r["lesion_fp"]) == (2, 0, 1 + 1 + 1)


def test_lesions_2d_full_connectivity():
    t = np.zeros((10, 10), np.uint8)
    t[1, 1] = t[2, 2] = 1  # diagonal neighbours: one component (8-connectivity)
    t[6:8, 6:8] = 1
    p = np.zeros_like(t)
    p[2, 2] = 1
    p[0, 9] = 1
    (r,) = case_metrics(p, t, (1.0, 1.0), {1: "lesion"})
    assert (r["lesions_truth"], r["lesions_detected"], r["lesion_fp"]) == (2, 1, 1)


def test_multiclass_rows_and_background_excluded():
    t = np.zeros((10, 10, 10), np.uint8)
    t[1:4, 1:4, 1:4] = 1
    t[6:9, 6:9, 6:9] = 2
    p = t.copy()
    p[6:9, 6:9, 6:9] = 0  # class 2 missed entirely
    p[0, 0, 0] = 7  # a label nobody asked about is ignored
    rows = case_metrics(p, t, (1, 1, 1), {0: "background", 1: "liver", 2: "spleen", 3: "kidney"})
    assert [r["class"] for r in rows] == ["liver", "spleen", "kidney"]
    liver, spleen, kidney = rows
    assert liver["dice"] == 1 and liver["hd95"] == 0
    assert spleen["dice"] == 0 and math.isnan(spleen["hd95"])
    assert kidney["dice"] == 1 and kidney["hd95"] == 0  # both empty


def test_bad_input():
    a = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        case_metrics(a, np.zeros((4, 4, 5), np.uint8), (1, 1, 1), ONE)
    with pytest.raises(ValueError, match="spacing"):
        case_metrics(a, a, (1, 1), ONE)
    with pytest.raises(ValueError, match="integer"):
        case_metrics(a.astype(float), a, (1, 1, 1), ONE)


@pytest.mark.parametrize("ndim", [2, 3])
def test_distances_equal_monai_functions(ndim):
    """HD95, ASSD and NSD equal the area-weighted ones from MONAI's sub-voxel elements (MONAI's own HD95 and
    ASSD count boundary voxels instead); NSD equals MONAI's ``compute_surface_dice(use_subvoxels=True)``;
    Dice and IoU equal MONAI's."""
    import torch
    from monai.metrics import compute_dice, compute_iou, compute_surface_dice
    from scipy import ndimage

    rng = np.random.default_rng(ndim)
    shape = (24, 20) if ndim == 2 else (16, 14, 12)
    spacing = (0.8, 1.7) if ndim == 2 else (0.8, 1.7, 3.0)
    t = ndimage.binary_opening(ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5).astype(np.int64)
    p = ndimage.binary_dilation(np.roll(t, 1, axis=0)).astype(np.int64)
    p[tuple(rng.integers(0, s) for s in shape)] = 1
    assert t.any() and p.any()
    r = one(p, t, spacing=spacing, tol=1.5)
    assert r["nsd_tolerance_mm"] == max(1.5, *spacing)  # 1.7 mm (2D), 3 mm (3D): floored

    def oh(a):
        return torch.nn.functional.one_hot(torch.from_numpy(a), 2).movedim(-1, 0)[None].float()

    P, T = oh(p), oh(t)
    ref = monai_surfels(p, t, spacing, r["nsd_tolerance_mm"])
    assert (r["hd95"], r["assd"], r["nsd"]) == pytest.approx((ref["hd95"], ref["assd"], ref["nsd"]), rel=1e-6)
    assert r["nsd"] == pytest.approx(compute_surface_dice(P, T, [r["nsd_tolerance_mm"]], spacing=spacing,
                                                          use_subvoxels=True).item(), rel=1e-6)
    assert r["dice"] == pytest.approx(compute_dice(P, T, include_background=False).item(), rel=1e-6)
    assert r["iou"] == pytest.approx(compute_iou(P, T, include_background=False).item(), rel=1e-6)


masks = arrays(np.uint8, (5, 6), elements=st.integers(0, 1))


@settings(max_examples=25, deadline=None)
@given(masks, masks, st.sampled_from([(1.0, 1.0), (0.5, 2.0)]))
def test_properties(p, t, spacing):
    a = one(p, t, spacing=spacing)
    b = one(t, p, spacing=spacing)
    assert 0 <= a["dice"] <= 1 and 0 <= a["iou"] <= 1 and 0 <= a["nsd"] <= 1
    assert a["dice"] == pytest.approx(2 * a["iou"] / (1 + a["iou"]))
    for k in ("dice", "iou", "nsd", "hd95", "assd"):  # symmetric in prediction and truth
        assert a[k] == pytest.approx(b[k], nan_ok=True)
    if p.any() and t.any():  # TP/|T| of (p, t) is TP/|P| of (t, p)
        assert a["sensitivity"] == pytest.approx(b["precision"])
    elif p.any() or t.any():  # one empty: precision 0 either way, sensitivity undefined with nothing to find
        assert a["precision"] == b["precision"] == 0
        assert (a["sensitivity"] == 0) if t.any() else math.isnan(a["sensitivity"])
    else:
        assert math.isnan(a["sensitivity"]) and math.isnan(a["precision"])


def test_precision_of_an_empty_prediction_reads_0_also_in_rows_scored_before():
    """Rows written before 6 Dec 2026 hold precision 1 where the prediction is empty and the truth is not; the
    readers take the row's counts: 0 there (a lesion never predicted must not score a perfect precision),
    undefined where both are empty, the stored value elsewhere."""
    old = {"precision": "1.0", "truth_voxels": "240", "pred_voxels": "0"}
    assert with_worst_case(old, "precision") == 0.0
    assert math.isnan(with_worst_case({**old, "truth_voxels": "0"}, "precision"))  # both empty: 0/0
    assert with_worst_case({**old, "pred_voxels": "412009", "precision": "0.25"}, "precision") == 0.25
    rows = [_row("c1", "a", 0.0, float("nan")) | {"pred_voxels": 0, "precision": 1.0},
            _row("c2", "a", 0.8, 2.0) | {"precision": 0.9}]
    assert summarize(rows, ["a"])["per_class"]["a"]["precision"] == pytest.approx(0.45)  # (0 + 0.9) / 2


def test_sensitivity_of_an_empty_truth_is_undefined_also_in_rows_scored_before():
    """Rows written before 6 Dec 2026 hold sensitivity 1 where the truth is empty (a lesion-free case), whatever
    was predicted; the readers take it as undefined, so a class's mean sensitivity is over the cases that have it."""
    old = {"sensitivity": "1.0", "truth_voxels": "0", "pred_voxels": "57"}
    assert math.isnan(with_worst_case(old, "sensitivity"))
    assert with_worst_case({**old, "truth_voxels": "240", "sensitivity": "0.4"}, "sensitivity") == 0.4
    rows = [_row("c1", "a", 0.0, float("nan")) | {"truth_voxels": 0, "sensitivity": 1.0},
            _row("c2", "a", 0.8, 2.0) | {"sensitivity": 0.7}]
    assert summarize(rows, ["a"])["per_class"]["a"]["sensitivity"] == pytest.approx(0.7)  # c1 left out


def _row(case, cls, dice, hd95, lt=0, ld=0, fp=0):
    return {"case": case, "class": cls, "dice": dice, "iou": dice / (2 - dice), "hd95": hd95, "assd": 1.0,
            "nsd": 0.5, "sensitivity": 1.0, "precision": 1.0, "rve": float("nan") if cls == "b" else 0.1,
            "truth_voxels": 10, "pred_voxels": 10, "lesions_truth": lt, "lesions_detected": ld, "lesion_fp": fp}


def test_summarize_means():
    rows = [
        _row("c1", "a", 0.8, 2.0, lt=3, ld=2, fp=1),
        _row("c2", "a", 0.6, 4.0, lt=1, ld=1, fp=0),
        _row("c1", "b", 1.0, 0.0),
        _row("c2", "b", 0.0, float("nan")),
    ]
    s = summarize(rows, ["a", "b"])
    assert s["n_cases"] == 2
    a, b = s["per_class"]["a"], s["per_class"]["b"]
    assert a["dice"] == pytest.approx(0.7) and a["dice_std"] == pytest.approx(math.sqrt(0.02))  # ddof=1
    assert a["hd95"] == pytest.approx(3.0) and a["hd95_undefined"] == 0
    assert a["lesion_sensitivity"] is None and a["lesion_fp_per_scan"] is None  # "a" is no lesion class
    assert a["rve"] == pytest.approx(0.1)
    assert b["dice"] == pytest.approx(0.5)
    assert b["hd95"] == 0.0 and b["hd95_undefined"] == 1 and b["hd95_std"] is None
    assert b["rve"] is None and b["lesion_sensitivity"] is None and b["lesion_fp_per_scan"] is None
    assert s["mean_dice"] == pytest.approx((0.7 + 0.5) / 2)
    assert s["mean_iou"] == pytest.approx((a["iou"] + b["iou"]) / 2)
    assert s["mean_hd95"] == pytest.approx((3.0 + 0.0) / 2)
    assert s["mean_over_classes"] == ["a", "b"] and s["empty_policy"] == EMPTY_POLICY
    import json

    json.dumps(s, allow_nan=False)  # strict JSON: undefined numbers are null


def test_summarize_counts_a_miss_at_the_diagonal():
    # class a: HD95 2 mm on c1; c2 missed (prediction empty) in a 300 mm image; c3 both empty (0 mm)
    rows = [_row("c1", "a", 0.8, 2.0) | {"assd": 1.0, "diagonal_mm": 250.0},
            _row("c2", "a", 0.0, float("nan")) | {"assd": float("nan"), "diagonal_mm": 300.0},
            _row("c3", "a", 1.0, 0.0) | {"assd": 0.0, "diagonal_mm": 250.0}]
    a = summarize(rows, ["a"])["per_class"]["a"]
    assert a["hd95"] == pytest.approx((2.0 + 300.0 + 0.0) / 3)
    assert a["hd95_std"] == pytest.approx(float(np.std([2.0, 300.0, 0.0], ddof=1)))
    assert a["assd"] == pytest.approx((1.0 + 300.0 + 0.0) / 3)
    assert a["hd95_nan_dropped"] == pytest.approx(1.0) and a["assd_nan_dropped"] == pytest.approx(0.5)
    assert a["hd95_undefined"] == 1
    s = summarize(rows, ["a"])
    assert s["mean_hd95"] == pytest.approx(302.0 / 3) and s["mean_hd95_nan_dropped"] == pytest.approx(1.0)
    assert s["nsd_tolerance_policy"] == NSD_TOLERANCE_POLICY


def test_summarize_reports_the_tolerances_used():
    p, t, _ = planes()
    rows = [r | {"case": c} for c, sp in (("c1", (1.0, 1.0, 2.0)), ("c2", (1.0, 1.0, 3.0)))
            for r in case_metrics(p, t, sp, ONE, tolerance_mm=2.5)]
    assert summarize(rows, ["organ"])["per_class"]["organ"]["nsd_tolerance_mm"] == [2.5, 3.0]


def test_per_case_csv_roundtrip(tmp_path):
    rows = [_row("c1", "a", 0.8, 2.0, lt=3, ld=2, fp=1), _row("c2", "b", 0.0, float("nan"))]
    path = tmp_path / "report" / "per_case.csv"
    write_per_case_csv(rows, path)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(PER_CASE_COLUMNS)
    assert lines[2].split(",")[4] == ""  # NaN hd95 -> empty cell
    back = read_per_case_csv(path)
    assert back[0]["case"] == "c1" and back[0]["dice"] == 0.8 and back[0]["lesions_truth"] == 3
    assert math.isnan(back[1]["hd95"]) and math.isnan(back[1]["rve"])
    assert summarize(back, ["a", "b"]) == summarize(rows, ["a", "b"])
    assert [p.name for p in path.parent.iterdir()] == ["per_case.csv"]  # no temporary file left


@pytest.mark.parametrize("spacing", [0.8, 0.7, 2.3])
def test_nsd_distance_equal_to_tolerance_counts(spacing):
    # a two-voxel shift puts every non-coincident edge exactly two spacings away (float32 in MONAI)
    t = cube((12, 12, 12), (3, 3, 3), (8, 8, 8))
    p = np.roll(t, 2, axis=2)
    sp = (spacing / 2, spacing / 2, spacing)
    assert one(p, t, spacing=sp, tol=2 * spacing)["nsd"] == 1.0
    assert one(p, t, spacing=sp, tol=2 * spacing)["hd95"] == 2 * spacing  # rounded to 1e-6 mm: exact
    assert one(p, t, spacing=sp, tol=2 * spacing * 0.99)["nsd"] < 1.0


def test_run_report_writes_worst_case_and_tolerance(tmp_path, capsys):
    """report/summary.json and report.md of a run whose lesion is missed in one of two cases."""
    import json

    from ctbench.reports.run_report import print_table, write_run_report

    t = cube((10, 10, 10), (1, 1, 1), (6, 6, 6))
    t[8, 8, 8] = 2
    p = t.copy()
    p[8, 8, 8] = 0  # c2: lesion missed
    classes = {1: "liver", 2: "lesion"}
    rows = [r | {"case": "c1"} for r in case_metrics(t, t, (1.0, 1.0, 2.0), classes)]
    rows += [r | {"case": "c2"} for r in case_metrics(p, t, (1.0, 1.0, 2.0), classes)]
    meta = {"model": "unet", "loss": "dice", "dataset": "phantom", "dims": 3, "split": "test", "seed": 0}
    summary = write_run_report(tmp_path / "report", rows, ["liver", "lesion"], meta)
    on_disk = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert on_disk == summary and summary["status"] == "complete"
    lesion = summary["per_class"]["lesion"]
    diagonal = math.sqrt(10**2 + 10**2 + 20**2)
    assert lesion["hd95"] == pytest.approx((0.0 + diagonal) / 2) and lesion["hd95_nan_dropped"] == 0.0
    assert lesion["hd95_undefined"] == 1 and lesion["nsd_tolerance_mm"] == [2.0, 2.0]
    assert summary["nsd_tolerance_policy"] == NSD_TOLERANCE_POLICY
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"| lesion | 0.500 ± 0.707 | 0.500 | {(diagonal / 2):.1f} | 0.0 | 1 |" in md
    print_table(summary)
    assert "misses" in capsys.readouterr().out
