"""Lesion-wise metrics (ctbench.lesion_metrics) on hand masks, and their matching against panoptica."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from ctbench.lesion_metrics import (
    LESION_COLUMNS,
    equivalent_diameter_mm,
    is_lesion_class,
    lesion_row,
    summarize_lesions,
)
from ctbench.metrics import PER_CASE_COLUMNS, case_metrics, read_per_case_csv, summarize, write_per_case_csv

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def box(shape, lo, hi):
    a = np.zeros(shape, bool)
    a[tuple(slice(a_, b_) for a_, b_ in zip(lo, hi, strict=True))] = True
    return a


def test_hand_case_recall_precision_f1_dice():
    shape = (30, 30, 30)
    truth = box(shape, (2, 2, 2), (6, 6, 6)) | box(shape, (20, 20, 20), (23, 23, 23))  # A: 64 voxels, B: 27
    pred = box(shape, (2, 2, 3), (6, 6, 7))  # A shifted by one slice: 48 in common, IoU 48/80 = 0.6
    pred |= box(shape, (12, 12, 12), (14, 14, 14))  # spurious: 8 voxels
    r = lesion_row(pred, truth, (1.0, 1.0, 1.0))
    assert (r["lesions_truth"], r["lesions_detected"], r["lesion_fp"]) == (2, 1, 1)
    assert r["lesion_recall"] == 0.5 and r["lesion_precision"] == 0.5
    assert r["lesion_f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    # BraTS 2023: Dice of the matched pair (2*48/128) over TP + FN + FP = 3
    assert r["lesion_dice"] == pytest.approx((2 * 48 / 128) / 3)
    assert r["lesion_f1_iou50"] == pytest.approx(0.5)  # IoU 0.6 also matches at 0.5


def test_iou_threshold_and_strict_f1():
    shape = (20, 20, 20)
    truth = box(shape, (2, 2, 2), (6, 6, 6))  # 64 voxels
    pred = box(shape, (2, 2, 4), (6, 6, 8))  # 32 in common: IoU 32/96 = 1/3
    r = lesion_row(pred, truth, (1.0, 1.0, 1.0))
    assert (r["lesions_detected"], r["lesion_fp"], r["lesion_f1"], r["lesion_f1_iou50"]) == (1, 0, 1.0, 0.0)
    r = lesion_row(pred, truth, (1.0, 1.0, 1.0), iou_threshold=0.4)
    assert (r["lesions_detected"], r["lesion_fp"], r["lesion_f1"]) == (0, 1, 0.0)
    with pytest.raises(ValueError, match="metrics.lesion_iou=0"):
        lesion_row(pred, truth, (1.0, 1.0, 1.0), iou_threshold=0)


def test_one_to_one_matching_prefers_the_higher_iou():
    shape = (12, 30)
    truth = box(shape, (2, 2), (6, 8)) | box(shape, (2, 10), (6, 13))  # A: 24 px, B: 12 px, 2 px apart
    pred = box(shape, (2, 2), (6, 13))  # one component over both: IoU 24/44 with A, 12/44 with B
    r = lesion_row(pred, truth, (1.0, 1.0))
    assert (r["lesions_truth"], r["lesions_detected"], r["lesion_fp"]) == (2, 1, 0)
    assert r["lesion_recall"] == 0.5 and r["lesion_precision"] == 1.0
    assert r["lesion_dice"] == pytest.approx((2 * 24 / (24 + 44)) / 2)


def test_whole_liver_prediction_has_small_lesion_recall_zero():
    """The old `detection` counted every lesion the painted liver touches; at IoU 0.1 none is found."""
    shape = (40, 40, 40)
    liver = box(shape, (4, 4, 4), (36, 36, 36))
    truth = ball(shape, (10, 10, 10), 2) | ball(shape, (25, 25, 25), 2) | ball(shape, (12, 28, 20), 1)
    assert np.all(equivalent_diameter_mm(np.array([33]), (1.0, 1.0, 1.0)) < 6)  # a radius-2 ball: 33 voxels
    r = lesion_row(liver, truth, (1.0, 1.0, 1.0))
    assert (r["lesions_truth"], r["lesions_detected"], r["lesion_fp"]) == (3, 0, 1)
    assert r["lesion_recall_small"] == 0.0 and r["lesion_recall"] == 0.0 and r["lesion_f1"] == 0.0
    assert math.isnan(r["lesion_recall_medium"]) and math.isnan(r["lesion_recall_large"])


def test_predicting_nothing_on_a_lesion_case():
    truth = box((20, 20, 20), (2, 2, 2), (6, 6, 6))
    r = lesion_row(np.zeros_like(truth), truth, (1.0, 1.0, 1.0))
    assert r["lesion_f1"] == 0.0 and r["lesion_recall"] == 0.0 and r["lesion_dice"] == 0.0
    assert math.isnan(r["lesion_precision"])  # no predicted lesion: undefined, not 1


def test_lesion_free_case():
    empty = np.zeros((16, 16, 16), bool)
    quiet = lesion_row(empty, empty, (1.0, 1.0, 1.0))
    assert quiet["lesion_fp"] == 0 and all(math.isnan(quiet[c]) for c in LESION_COLUMNS)
    spurious = lesion_row(box(empty.shape, (1, 1, 1), (3, 3, 3)), empty, (1.0, 1.0, 1.0))
    assert spurious["lesion_fp"] == 1 and math.isnan(spurious["lesion_recall"])
    assert spurious["lesion_precision"] == spurious["lesion_f1"] == spurious["lesion_dice"] == 0.0


def test_size_strata_by_equivalent_diameter():
    # 3D: a 4 x 4 x 4 mm cube -> (6 * 64 / pi) ** (1/3) = 4.96 mm; 2D: a 10 x 10 mm square -> 11.28 mm
    assert equivalent_diameter_mm(np.array([8]), (2.0, 2.0, 2.0))[0] == pytest.approx((6 * 64 / math.pi) ** (1 / 3))
    assert equivalent_diameter_mm(np.array([25]), (2.0, 2.0))[0] == pytest.approx(math.sqrt(400 / math.pi))
    shape = (40, 40)
    small, medium, large = box(shape, (1, 1), (3, 3)), box(shape, (10, 10), (14, 14)), box(shape, (20, 20), (27, 27))
    # at 2 mm: small 4 x 4 mm (4.5 mm), medium 8 x 8 mm (9.0 mm), large 14 x 14 mm (15.8 mm)
    r = lesion_row(medium | large, small | medium | large, (2.0, 2.0))
    assert (r["lesion_recall_small"], r["lesion_recall_medium"], r["lesion_recall_large"]) == (0.0, 1.0, 1.0)
    r = lesion_row(small, small | medium, (2.0, 2.0))
    assert (r["lesion_recall_small"], r["lesion_recall_medium"]) == (1.0, 0.0)
    assert math.isnan(r["lesion_recall_large"])


def test_full_connectivity_3d_and_2d():
    t = np.zeros((20, 20, 20), bool)
    t[10, 10, 10] = t[11, 11, 11] = True  # touching at a corner: one lesion (26-connectivity)
    r = lesion_row(t, t, (1.0, 1.0, 1.0))
    assert (r["lesions_truth"], r["lesions_detected"], r["lesion_fp"]) == (1, 1, 0)
    t2 = np.zeros((10, 10), bool)
    t2[1, 1] = t2[2, 2] = True  # 8-connectivity in 2D
    assert lesion_row(t2, t2, (1.0, 1.0))["lesions_truth"] == 1


def test_lesion_classes_by_name_agree_with_the_dataset_presets():
    assert is_lesion_class("lesion") and is_lesion_class("kidney_tumor") and is_lesion_class("colon_cancer")
    assert not is_lesion_class("liver") and not is_lesion_class("kidney_left") and not is_lesion_class("foreground")
    for path in sorted((CONFIGS / "dataset").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        if not (cfg.get("class_names") and cfg.get("headline_classes")):
            continue
        # the headline (organ) classes of a preset are exactly its foreground classes that are not lesions
        organs = [c for c in cfg["class_names"][1:] if not is_lesion_class(c)]
        assert organs == list(cfg["headline_classes"]), path.name


def test_case_metrics_rows_and_csv_round_trip(tmp_path):
    truth = np.zeros((20, 20, 20), np.uint8)
    truth[2:12, 2:12, 2:12] = 1
    truth[4:7, 4:7, 4:7] = 2
    pred = truth.copy()
    pred[15:17, 15:17, 15:17] = 2  # a spurious lesion outside the liver
    organ, lesion = case_metrics(pred, truth, (1.0, 1.0, 1.0), {1: "liver", 2: "lesion"})
    assert all(organ.get(c) is None for c in ("lesions_truth", *LESION_COLUMNS))
    assert (lesion["lesions_truth"], lesion["lesions_detected"], lesion["lesion_fp"]) == (1, 1, 1)
    assert lesion["lesion_precision"] == 0.5 and lesion["lesion_dice"] == pytest.approx(0.5)
    assert set(LESION_COLUMNS) < set(PER_CASE_COLUMNS)
    write_per_case_csv([{"case": "c1", **organ}, {"case": "c1", **lesion}], tmp_path / "per_case.csv")
    back = read_per_case_csv(tmp_path / "per_case.csv")
    assert back[1]["lesion_f1"] == pytest.approx(2 / 3) and math.isnan(back[0]["lesion_f1"])


def test_summary_lesion_block():
    def row(case, n_t, tp, fp, recall, f1, dice, small=float("nan")):
        return {"case": case, "class": "lesion", "lesions_truth": n_t, "lesions_detected": tp, "lesion_fp": fp,
                "lesion_recall": recall, "lesion_precision": float("nan"), "lesion_f1": f1, "lesion_dice": dice,
                "lesion_f1_iou50": f1, "lesion_recall_small": small}

    rows = [row("a", 2, 1, 0, 0.5, 2 / 3, 0.4, small=0.0), row("b", 0, 0, 3, float("nan"), 0.0, 0.0),
            row("c", 0, 0, 0, float("nan"), float("nan"), float("nan")), row("d", 1, 1, 1, 1.0, 2 / 3, 0.45)]
    block = summarize_lesions(rows, ["liver", "lesion"])
    assert list(block["per_class"]) == ["lesion"] and block["iou_threshold"] == 0.1
    s = block["per_class"]["lesion"]
    assert (s["lesion_cases"], s["lesion_free_cases"], s["lesions_truth"], s["lesions_matched"]) == (2, 2, 3, 2)
    assert s["fp_per_lesion_free_case"] == pytest.approx(3 / 2)
    assert s["recall"] == pytest.approx(0.75) and s["recall_pooled"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx((2 / 3 + 0 + 2 / 3) / 3) and s["lesion_dice"] == pytest.approx(0.85 / 3)
    assert s["precision_pooled"] == pytest.approx(2 / 6) and s["recall_small"] == 0.0
    assert s["precision"] is None and s["recall_large"] is None
    summary = summarize(rows, ["lesion"])
    assert summary["lesion"]["per_class"]["lesion"]["lesions_fp"] == 4
    entry = summary["per_class"]["lesion"]
    assert entry["lesion_sensitivity"] == pytest.approx(2 / 3) and entry["lesion_fp_per_scan"] == 1.0


# --------------------------------------------------------------------------------------------------
# against panoptica (Kofler et al. 2023): the same matching and counts, computed independently
# --------------------------------------------------------------------------------------------------


def _random_lesions(rng, shape, n):
    mask = np.zeros(shape, bool)
    for _ in range(n):
        centre = [int(rng.integers(3, s - 3)) for s in shape]
        mask |= ball(shape, centre, float(rng.uniform(0.8, 3.5)))
    return mask


def _hand_cases():
    rng = np.random.default_rng(7)
    shape = (24, 24, 24)
    liver = box((40, 40, 40), (4, 4, 4), (36, 36, 36))
    cases = [("whole liver", liver, ball((40, 40, 40), (10, 10, 10), 2) | ball((40, 40, 40), (25, 25, 25), 2)),
             ("nothing", np.zeros(shape, bool), ball(shape, (8, 8, 8), 3))]
    for k in range(8):
        truth = _random_lesions(rng, shape, int(rng.integers(1, 5)))
        shifted = np.roll(truth, tuple(int(s) for s in rng.integers(-2, 3, size=3)), axis=(0, 1, 2))
        cases.append((f"random {k}", shifted | _random_lesions(rng, shape, int(rng.integers(0, 3))), truth))
    return cases


@pytest.mark.parametrize("threshold", [0.1, 0.5])
def test_matching_agrees_with_panoptica(threshold):
    panoptica = pytest.importorskip("panoptica")
    from panoptica.metrics import Metric

    evaluator = panoptica.Panoptica_Evaluator(
        expected_input=panoptica.InputType.SEMANTIC,
        instance_approximator=panoptica.ConnectedComponentsInstanceApproximator(),
        instance_matcher=panoptica.NaiveThresholdMatching(matching_metric=Metric.IOU, matching_threshold=threshold))
    for name, pred, truth in _hand_cases():
        ours = lesion_row(pred, truth, (1.0, 1.0, 1.0), iou_threshold=threshold)
        theirs = evaluator.evaluate(pred.astype(np.uint8), truth.astype(np.uint8), verbose=False)["ungrouped"]
        tp, fp, fn = theirs.tp, theirs.fp, theirs.fn
        assert (ours["lesions_detected"], ours["lesion_fp"], ours["lesions_truth"] - ours["lesions_detected"]) == (
            tp, fp, fn), name
        if tp + fp + fn:
            assert ours["lesion_f1"] == pytest.approx(theirs.rq), name  # panoptica's recognition quality = F1
        if tp:  # panoptica's sq_dsc: mean Dice of the matched pairs; BraTS 2023 spreads it over TP+FN+FP
            assert ours["lesion_dice"] == pytest.approx(theirs.sq_dsc * tp / (tp + fp + fn)), name
        elif fn + fp:
            assert ours["lesion_dice"] == 0.0, name


def test_merged_instances_on_two_touching_lesions():
    """Two truth lesions one voxel apart (a layer of background between, so two components even at full
    connectivity): one predicted blob over both merges 2; a prediction with the layer cut merges 0; a missed
    lesion merges nothing either; the merged pair still matches one lesion (matching alone cannot tell)."""
    shape = (12, 20, 10)
    a, b = box(shape, (3, 3, 3), (9, 9, 7)), box(shape, (3, 10, 3), (9, 16, 7))  # y 3-8 and 10-15: y = 9 between
    truth = a | b
    merged = lesion_row(box(shape, (3, 3, 3), (9, 16, 7)), truth, (2.0, 2.0, 3.0))
    assert (merged["lesions_truth"], merged["lesion_merged"], merged["lesions_detected"]) == (2, 2, 1)
    assert lesion_row(truth.copy(), truth, (2.0, 2.0, 3.0))["lesion_merged"] == 0
    assert lesion_row(b.copy(), truth, (2.0, 2.0, 3.0))["lesion_merged"] == 0  # a missed, b found alone
    third = truth | box(shape, (3, 17, 3), (9, 20, 7))  # a third lesion beyond b, left alone by the prediction
    assert lesion_row(box(shape, (3, 3, 3), (9, 16, 7)), third, (2.0, 2.0, 3.0))["lesion_merged"] == 2


def test_merged_instances_in_the_rows_and_the_summary(tmp_path):
    """`lesion_merged` is an integer per_case.csv column of the lesion class (empty for organs), and the summary's
    lesion block totals it and averages it per case."""
    truth = np.zeros((16, 16, 8), np.uint8)
    truth[1:15, 1:15, 1:7] = 1
    truth[3:7, 3:7, 2:5] = 2
    truth[3:7, 8:12, 2:5] = 2  # one liver row (y = 7) between the two lesions
    pred = truth.copy()
    pred[3:7, 7, 2:5] = 2  # the border predicted as lesion: one component over both
    organ, lesion = case_metrics(pred, truth, (2.0, 2.0, 3.0), {1: "liver", 2: "lesion"})
    assert organ["lesion_merged"] is None and lesion["lesion_merged"] == 2
    rows = [{"case": "c1", **organ}, {"case": "c1", **lesion}]
    write_per_case_csv(rows, tmp_path / "per_case.csv")
    back = read_per_case_csv(tmp_path / "per_case.csv")
    assert back[1]["lesion_merged"] == 2 and isinstance(back[1]["lesion_merged"], int)
    separated = case_metrics(truth, truth, (2.0, 2.0, 3.0), {1: "liver", 2: "lesion"})
    block = summarize_lesions(back + [{"case": "c2", **r} for r in separated], ["liver", "lesion"])["per_class"]
    assert block["lesion"]["lesions_merged"] == 2 and block["lesion"]["merged_per_case"] == 1.0
