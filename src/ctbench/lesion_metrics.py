"""Lesion-wise (instance) metrics of a lesion class: one-to-one matching of connected components, lesion
recall, precision and F1, false-positive lesions, lesion-wise Dice and recall per lesion size.

Matching (Metrics Reloaded, Maier-Hein et al. 2024, Nat. Methods 21:195, "instance segmentation"; panoptica,
Kofler et al. 2023, ``NaiveThresholdMatching``): truth and prediction are split into connected components
(full connectivity: 26 in 3D, 8 in 2D); every overlapping (truth, predicted) pair gets its IoU; pairs are
taken greedily by decreasing IoU, each component at most once, while IoU >= the threshold (0.1 by default,
also 0.5 for ``lesion_f1_iou50``). A matched truth lesion is a true positive (TP), an unmatched one a false
negative (FN), an unmatched predicted component a false positive (FP). Per case:

- recall ``TP / (TP + FN)``, precision ``TP / (TP + FP)``, F1 ``2 TP / (2 TP + FP + FN)``;
- lesion-wise Dice as the BraTS 2023 challenge counts it: ``sum over TP of Dice(truth_i, pred_i) /
  (TP + FN + FP)``, so a missed and a spurious lesion each score 0;
- recall per size stratum of the truth lesion's equivalent diameter (the sphere, in 2D the circle, of its
  volume): small < 6 mm, medium 6-10 mm, large > 10 mm;
- merged instances (``lesion_merged``): the truth lesions that share one predicted component with another
  truth lesion (any overlap), i.e. the instances a prediction fails to separate (the survey's 4.1.2 claim for
  U-Net's distance-weighted loss). Matching cannot show this: a merged pair still matches one of its lesions.

A value whose denominator is 0 is undefined (NaN): recall on a lesion-free case, precision without any
predicted component. Unlike BraTS 2023, which scores a case where both are empty as 1, such a case has no
F1 and no lesion Dice here, so predicting nothing never raises a mean. Written by hand on scipy's
``ndimage.label`` because panoptica (the reference of ``tests/test_lesion_metrics.py``) pins
``numpy<2.3`` and is a test-only dependency.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Words that make a class a lesion class (the SNOMED CT "morphologically abnormal structure" names of
#: DICOM SEG, ``data/dicom/seg.py``), matched on the words of the class name (``kidney_tumor``, ``cancer``).
LESION_WORDS = frozenset({"lesion", "lesions", "tumor", "tumors", "tumour", "tumours", "neoplasm", "cancer",
                          "metastasis", "metastases", "cyst", "cysts", "nodule", "nodules"})
#: The default matching threshold (IoU) and the strict one reported beside it.
DEFAULT_IOU_THRESHOLD = 0.1
STRICT_IOU_THRESHOLD = 0.5
#: Boundaries (mm, equivalent diameter) of the small / medium / large strata.
SIZE_STRATA_MM = (6.0, 10.0)
STRATA = ("small", "medium", "large")

#: ``per_case.csv`` counts of a lesion class: truth lesions, matched ones, unmatched predicted components.
LESION_COUNT_COLUMNS: tuple[str, ...] = ("lesions_truth", "lesions_detected", "lesion_fp", "lesion_merged")
#: ``per_case.csv`` columns of a lesion class (these and the counts are empty for other classes).
LESION_COLUMNS: tuple[str, ...] = (
    "lesion_recall", "lesion_precision", "lesion_f1", "lesion_dice", "lesion_f1_iou50",
    "lesion_recall_small", "lesion_recall_medium", "lesion_recall_large",
)

#: The matching rule, written into ``summary.json`` as ``lesion.matching``.
LESION_POLICY = (
    "connected components (full connectivity) of truth and prediction, matched one-to-one greedily by "
    "decreasing IoU while IoU >= iou_threshold; recall = TP/(TP+FN), precision = TP/(TP+FP), "
    "F1 = 2TP/(2TP+FP+FN), lesion_dice = sum of matched pairs' Dice / (TP+FN+FP) (BraTS 2023: missed and "
    "spurious lesions score 0); a value with a zero denominator is undefined; size strata by equivalent "
    "diameter < 6, 6-10, > 10 mm; lesion_merged = truth lesions that overlap a predicted component which "
    "overlaps another truth lesion"
)

NAN = float("nan")


def is_lesion_class(name: str) -> bool:
    """Whether class ``name`` is scored lesion-wise: one of its words is in :data:`LESION_WORDS`."""
    return any(word in LESION_WORDS for word in re.split(r"[^a-z0-9]+", str(name).lower()))


def check_iou_threshold(value: float) -> float:
    """``value`` as a matching threshold in (0, 1]; a ValueError naming the fix otherwise."""
    threshold = float(value)
    if not 0 < threshold <= 1:
        raise ValueError(f"lesion matching threshold metrics.lesion_iou={value} must be an IoU in (0, 1]")
    return threshold


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label map, voxels per component) of a boolean mask, full connectivity; component ``i`` is label
    ``i + 1``."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, mask.ndim))
    return labels, np.bincount(labels.ravel(), minlength=n + 1)[1:]


def overlaps(truth_labels: np.ndarray, pred_labels: np.ndarray,
             n_pred: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every overlapping pair of components: (truth index, predicted index, voxels in common)."""
    both = (truth_labels > 0) & (pred_labels > 0)
    key = truth_labels[both].astype(np.int64) * (n_pred + 1) + pred_labels[both]
    keys, common = np.unique(key, return_counts=True)
    return keys // (n_pred + 1) - 1, keys % (n_pred + 1) - 1, common


def match(truth_sizes: np.ndarray, pred_sizes: np.ndarray, pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
          iou_threshold: float) -> list[tuple[int, int, int]]:
    """One-to-one matches ``(truth index, predicted index, voxels in common)``: pairs by decreasing IoU
    (ties by index), each component used once, IoU >= ``iou_threshold`` (panoptica's
    ``NaiveThresholdMatching``)."""
    t_idx, p_idx, common = pairs
    iou = common / (truth_sizes[t_idx] + pred_sizes[p_idx] - common)
    used_t, used_p, out = set(), set(), []
    for k in np.lexsort((p_idx, t_idx, -iou)):
        t, p = int(t_idx[k]), int(p_idx[k])
        if iou[k] >= iou_threshold and t not in used_t and p not in used_p:
            used_t.add(t)
            used_p.add(p)
            out.append((t, p, int(common[k])))
    return out


def merged_instances(pairs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
    """How many truth components overlap a predicted component that also overlaps another truth component,
    from the overlapping pairs of :func:`overlaps` (each (truth, predicted) pair listed once)."""
    truth_idx, pred_idx, _ = pairs
    if not len(pred_idx):
        return 0
    truths_per_pred = np.bincount(pred_idx)
    return len(np.unique(truth_idx[truths_per_pred[pred_idx] >= 2]))


def equivalent_diameter_mm(voxels: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Diameter of the sphere (3D) or circle (2D) with the components' volume (area): ``(6V/pi)^(1/3)``,
    ``(4A/pi)^(1/2)``."""
    size = np.asarray(voxels, dtype=np.float64) * math.prod(float(s) for s in spacing)
    return (6 * size / math.pi) ** (1 / 3) if len(spacing) == 3 else np.sqrt(4 * size / math.pi)


def _ratio(num: float, den: float) -> float:
    return num / den if den else NAN


def lesion_row(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
               iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> dict[str, Any]:
    """Lesion-wise metrics of one case and class: the counts ``lesions_truth``, ``lesions_detected``
    (matched truth lesions), ``lesion_fp`` (unmatched predicted components) and ``lesion_merged``
    (:func:`merged_instances`), and :data:`LESION_COLUMNS`.

    Args:
        pred: boolean mask of the class in the prediction (2D or 3D).
        truth: boolean mask of the class in the truth, same shape.
        spacing: voxel size in mm per axis.
        iou_threshold: IoU a pair needs to match.
    """
    threshold = check_iou_threshold(iou_threshold)
    truth_labels, truth_sizes = components(np.asarray(truth, dtype=bool))
    pred_labels, pred_sizes = components(np.asarray(pred, dtype=bool))
    n_t, n_p = len(truth_sizes), len(pred_sizes)
    pairs = overlaps(truth_labels, pred_labels, n_p)
    matched = match(truth_sizes, pred_sizes, pairs, threshold)
    strict = match(truth_sizes, pred_sizes, pairs, max(threshold, STRICT_IOU_THRESHOLD))
    tp, tp50 = len(matched), len(strict)
    dice = math.fsum(2 * common / (truth_sizes[t] + pred_sizes[p]) for t, p, common in matched)
    row: dict[str, Any] = {
        "lesions_truth": n_t, "lesions_detected": tp, "lesion_fp": n_p - tp, "lesion_merged": merged_instances(pairs),
        "lesion_recall": _ratio(tp, n_t), "lesion_precision": _ratio(tp, n_p),
        "lesion_f1": _ratio(2 * tp, n_t + n_p), "lesion_dice": _ratio(dice, n_t + n_p - tp),
        "lesion_f1_iou50": _ratio(2 * tp50, n_t + n_p),
    }
    stratum = np.digitize(equivalent_diameter_mm(truth_sizes, spacing), SIZE_STRATA_MM, right=False)
    found = np.zeros(n_t, dtype=bool)
    found[[t for t, _, _ in matched]] = True
    for k, name in enumerate(STRATA):
        in_stratum = stratum == k
        row[f"lesion_recall_{name}"] = _ratio(int(np.count_nonzero(found & in_stratum)),
                                              int(np.count_nonzero(in_stratum)))
    return row


def empty_lesion_row() -> dict[str, Any]:
    """The lesion columns of a case where truth and prediction are both empty: no lesion, nothing defined."""
    return dict.fromkeys(LESION_COUNT_COLUMNS, 0) | dict.fromkeys(LESION_COLUMNS, NAN)


def not_lesion_row() -> dict[str, Any]:
    """The lesion columns of a class that is not a lesion class: all empty (None)."""
    return dict.fromkeys(LESION_COUNT_COLUMNS + LESION_COLUMNS)


def _num(value: Any) -> float:
    return NAN if value is None or value == "" else float(value)


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else None


def summarize_lesions(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str],
                      iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> dict[str, Any]:
    """The ``lesion`` block of ``summary.json``: per lesion class, means over the cases where each value is
    defined (``recall``, ``precision``, ``f1``, ``lesion_dice``, ``f1_iou50``, ``recall_small|medium|large``),
    totals (``lesions_truth``, ``lesions_matched``, ``lesions_fp``, ``lesions_merged``), the pooled
    ``recall_pooled`` / ``precision_pooled``, ``merged_per_case`` (mean ``lesion_merged``) and
    ``fp_per_lesion_free_case`` (predicted lesions on the cases without a truth lesion, per such case; null
    without any)."""
    per_class: dict[str, dict[str, Any]] = {}
    for name in (str(n) for n in class_names if is_lesion_class(str(n))):
        sel = [r for r in rows if str(r["class"]) == name]
        count = {k: [int(_num(r.get(k))) if math.isfinite(_num(r.get(k))) else 0 for r in sel]
                 for k in LESION_COUNT_COLUMNS}
        free = [fp for n_t, fp in zip(count["lesions_truth"], count["lesion_fp"], strict=True) if n_t == 0]
        n_t, tp, fp = (sum(count[k]) for k in ("lesions_truth", "lesions_detected", "lesion_fp"))
        entry: dict[str, Any] = {
            "cases": len(sel), "lesion_cases": len(sel) - len(free), "lesion_free_cases": len(free),
            "lesions_truth": n_t, "lesions_matched": tp, "lesions_fp": fp, "lesions_merged": sum(count["lesion_merged"]),
            "merged_per_case": sum(count["lesion_merged"]) / len(sel) if sel else None,
            "recall_pooled": tp / n_t if n_t else None, "precision_pooled": tp / (tp + fp) if tp + fp else None,
            "fp_per_lesion_free_case": sum(free) / len(free) if free else None,
        }
        for column in LESION_COLUMNS:
            key = column if column == "lesion_dice" else column.removeprefix("lesion_")
            entry[key] = _mean([_num(r.get(column)) for r in sel])
        per_class[name] = entry
    return {"iou_threshold": check_iou_threshold(iou_threshold), "strict_iou_threshold": STRICT_IOU_THRESHOLD,
            "size_strata_mm": list(SIZE_STRATA_MM), "matching": LESION_POLICY, "per_class": per_class}
