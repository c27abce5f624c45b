"""Per-case, per-class segmentation metrics: Dice, IoU, HD95, ASSD, NSD, sensitivity, precision,
relative volume error, and for a lesion class the lesion-wise metrics of :mod:`ctbench.lesion_metrics`; plus the ``per_case.csv`` reader/writer and the
summary (means over cases, then over classes) of ``docs/report-format.md``.

Distances are in millimetres (voxel spacing applied). HD95, ASSD and NSD weigh each boundary element by
its area (Nikolov et al. 2021, DeepMind's surfels: :mod:`ctbench.surface_distance`, definitions in
docs/report-format.md), computed once per class. Each class is first cropped to the bounding box of
truth | prediction, so a 200^3 volume costs little more than its objects' surfaces.

Volume-overlap metrics (Dice, IoU, sensitivity, precision, RVE) are plain voxel counts, the same
numbers as ``monai.metrics.compute_dice`` / ``compute_iou`` without one-hot tensors of the whole volume.

Heavy imports (torch, MONAI) happen inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ctbench import surface_distance
from ctbench.lesion_metrics import (
    DEFAULT_IOU_THRESHOLD,
    LESION_COLUMNS,
    LESION_COUNT_COLUMNS,
    empty_lesion_row,
    is_lesion_class,
    lesion_row,
    not_lesion_row,
    summarize_lesions,
)

#: The one empty-case policy (docs/report-format.md), written into ``summary.json`` as ``empty_policy``.
EMPTY_POLICY: str = (
    "truth and prediction both empty -> dice = iou = nsd = 1, hd95 = assd = 0, rve = 0, sensitivity and "
    "precision undefined (NaN: empty cell, excluded from means); exactly one empty -> dice = iou = nsd = 0, "
    "hd95 = assd undefined (empty cell in per_case.csv, counted in hd95_undefined) and counted at the worst "
    "case, the image diagonal diagonal_mm, in hd95/assd means and comparisons (hd95_nan_dropped/assd_nan_dropped "
    "leave those cases out), precision = 0 whichever is empty (for an empty prediction as Metrics Reloaded's "
    "PPV), sensitivity = 0 when the prediction is empty and undefined (NaN) when the truth is (Metrics "
    "Reloaded: nothing to find); rve = NaN (empty cell, excluded from means) when only the truth is empty."
)

#: How the NSD tolerance of each class is chosen, written into ``summary.json`` as ``nsd_tolerance_policy``.
NSD_TOLERANCE_POLICY: str = (
    "per class: the configured tolerance (metrics.nsd_tolerance_mm: one number, or {class: mm, default: mm}); "
    "as in Nikolov et al. 2021 (JMIR 23:e26151) and Metrics Reloaded (Maier-Hein et al. 2024) it should be the "
    "boundary's inter-observer variation; floored at the largest voxel spacing of each case's evaluation grid, "
    "below which NSD only counts exactly matching boundary elements; the tolerance used is per_case.csv's "
    "nsd_tolerance_mm"
)
#: Tolerance of a class a mapping does not name and that has no ``default`` entry.
DEFAULT_NSD_TOLERANCE_MM = 1.0

#: Column order of ``per_case.csv``; ``predict_seconds`` is the test loop's (engine/module.py), not a metric
#: of :func:`case_metrics` (empty from ``ctbench score``).
PER_CASE_COLUMNS: list[str] = [
    "case", "class", "dice", "iou", "hd95", "assd", "nsd", "sensitivity", "precision", "rve",
    "truth_voxels", "pred_voxels", *LESION_COUNT_COLUMNS, *LESION_COLUMNS,
    "diagonal_mm", "nsd_tolerance_mm", "predict_seconds",
]

#: Columns every ``per_case.csv`` has (the public minimum of DESIGN.md); readers need no others.
REQUIRED_COLUMNS: tuple[str, ...] = ("case", "class", "dice", "iou", "hd95")

_INT_COLUMNS = ("truth_voxels", "pred_voxels", *LESION_COUNT_COLUMNS)
_STR_COLUMNS = ("case", "class")
_FLOAT_COLUMNS = tuple(c for c in PER_CASE_COLUMNS if c not in _INT_COLUMNS + _STR_COLUMNS)

NAN = float("nan")

#: Surface distances that count at the worst case (the image diagonal) for a missed or spurious structure.
WORST_CASE_METRICS: tuple[str, ...] = ("hd95", "assd")


# --------------------------------------------------------------------------------------------------
# per case
# --------------------------------------------------------------------------------------------------


def image_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length of the diagonal of the image extent, ``sqrt(sum_i (n_i s_i)^2)`` in mm: no two voxels of the
    image are farther apart, so it is the worst-case HD95/ASSD of a missed or spurious structure."""
    return round(math.sqrt(math.fsum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))), 6)


def nsd_tolerance(name: str, tolerance_mm: float | Mapping[str, float], spacing: Sequence[float]) -> float:
    """The NSD tolerance of class ``name`` (:data:`NSD_TOLERANCE_POLICY`): the configured value, at least
    the largest voxel spacing."""
    if isinstance(tolerance_mm, Mapping):
        tolerance_mm = tolerance_mm.get(name, tolerance_mm.get("default", DEFAULT_NSD_TOLERANCE_MM))
    tolerance = float(tolerance_mm)
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ValueError(f"NSD tolerance of {name!r} must be a finite number of mm >= 0, got {tolerance_mm}")
    return max(tolerance, max(float(s) for s in spacing))


def _both_empty_row(name: str) -> dict[str, Any]:
    return {
        "class": name, "dice": 1.0, "iou": 1.0, "hd95": 0.0, "assd": 0.0, "nsd": 1.0,
        "sensitivity": NAN, "precision": NAN, "rve": 0.0, "truth_voxels": 0, "pred_voxels": 0,
    } | (empty_lesion_row() if is_lesion_class(name) else not_lesion_row())


def _union_box(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None,
               shape: Sequence[int], margin: int = 1) -> tuple[slice, ...] | None:
    """Bounding box of two ``find_objects`` boxes (either may be None), grown by ``margin``."""
    boxes = [x for x in (a, b) if x is not None]
    if not boxes:
        return None
    out = []
    for ax, n in enumerate(shape):
        lo = min(bx[ax].start for bx in boxes)
        hi = max(bx[ax].stop for bx in boxes)
        out.append(slice(max(lo - margin, 0), min(hi + margin, n)))
    return tuple(out)


def case_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float], classes: Mapping[int, str],
                 tolerance_mm: float | Mapping[str, float] = DEFAULT_NSD_TOLERANCE_MM,
                 lesion_iou: float = DEFAULT_IOU_THRESHOLD) -> list[dict]:
    """Metrics of one case, one dict per foreground class.

    Args:
        pred: integer label map of the prediction (2D or 3D).
        truth: integer label map of the ground truth, same shape.
        spacing: voxel size in mm per axis (same order as the array axes).
        classes: ``{label id: class name}``; id 0 (background) is never scored.
        tolerance_mm: normalised-surface-Dice tolerance in mm, one for every class or ``{class name: mm}``
            with an optional ``default``; floored at the largest spacing (:func:`nsd_tolerance`).
        lesion_iou: IoU at which a predicted component matches a truth lesion, for the classes that
            :func:`ctbench.lesion_metrics.is_lesion_class` names (the other classes leave the lesion
            columns empty).

    Returns:
        One dict per foreground class with the ``per_case.csv`` keys except ``case``. Distances in mm.
        Empty truth and/or prediction follow :data:`EMPTY_POLICY`; undefined values are NaN. Every row
        holds the image's ``diagonal_mm`` and the ``nsd_tolerance_mm`` used.
    """
    from scipy import ndimage

    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    if truth.ndim not in (2, 3):
        raise ValueError(f"label maps must be 2D or 3D, got {truth.ndim}D shape {truth.shape}")
    spacing = [float(s) for s in spacing]
    if len(spacing) != truth.ndim or not all(s > 0 and math.isfinite(s) for s in spacing):
        raise ValueError(f"spacing {spacing} must have one positive value per axis of shape {truth.shape}")
    for name, arr in (("prediction", pred), ("truth", truth)):
        if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
            raise ValueError(f"{name} must be an integer label map, got dtype {arr.dtype}")

    fg = [c for c in classes if int(c) != 0]
    top = max([int(c) for c in fg], default=0)
    # one pass per array for every class's bounding box; labels above `top` are irrelevant
    def boxes(a: np.ndarray) -> list:
        if a.size and (a.max() > top or a.min() < 0):
            a = np.where((a > top) | (a < 0), 0, a)
        found = ndimage.find_objects(a.astype(np.int32, copy=False), max_label=top) if top else []
        return list(found) + [None] * (top - len(found))

    boxes_p, boxes_t = boxes(pred), boxes(truth)
    diagonal = image_diagonal_mm(truth.shape, spacing)
    tolerances = {int(c): nsd_tolerance(str(classes[c]), tolerance_mm, spacing) for c in fg}

    rows = []
    for c in fg:
        c = int(c)
        name = str(classes[c])
        box = _union_box(boxes_p[c - 1], boxes_t[c - 1], truth.shape)
        if box is None:
            rows.append(_both_empty_row(name) | {"diagonal_mm": diagonal, "nsd_tolerance_mm": tolerances[c]})
            continue
        p = pred[box] == c
        t = truth[box] == c
        n_p = int(np.count_nonzero(p))
        n_t = int(np.count_nonzero(t))
        tp = int(np.count_nonzero(p & t))
        row: dict[str, Any] = {"class": name}
        row["dice"] = 2.0 * tp / (n_p + n_t)
        row["iou"] = tp / (n_p + n_t - tp)
        if n_p and n_t:
            sd = surface_distance.surface_distances(p, t, spacing)
            # rounded to 1e-6 mm so that 0.8 mm is written as 0.8
            row["hd95"] = round(surface_distance.hausdorff(sd, 95), 6)
            row["assd"] = round(surface_distance.average_symmetric(sd), 6)
            row["nsd"] = surface_distance.surface_dice(sd, tolerances[c])
        else:
            row["hd95"], row["assd"], row["nsd"] = NAN, NAN, 0.0
        row["sensitivity"] = tp / n_t if n_t else NAN  # nothing to find: undefined (Metrics Reloaded)
        row["precision"] = tp / n_p if n_p else 0.0  # here n_p = 0 means a missed non-empty truth
        row["rve"] = (n_p - n_t) / n_t if n_t else NAN
        row["truth_voxels"], row["pred_voxels"] = n_t, n_p
        row.update(lesion_row(p, t, spacing, lesion_iou) if is_lesion_class(name) else not_lesion_row())
        row["diagonal_mm"], row["nsd_tolerance_mm"] = diagonal, tolerances[c]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------------


def _num(v: Any) -> float:
    if v is None or v == "":
        return NAN
    return float(v)


def with_worst_case(row: Mapping[str, Any], key: str) -> float:
    """``row[key]`` as a float; an HD95 or ASSD left undefined because exactly one of truth and
    prediction is empty counts as the case's ``diagonal_mm`` (NaN for files without that column), and the
    precision of an empty prediction of a non-empty truth as 0, the sensitivity of an empty truth and the
    precision where both are empty as NaN, also in rows scored before 6 Dec 2026, which hold 1 there (their
    ``pred_voxels``/``truth_voxels`` decide it exactly)."""
    value = _num(row.get(key))
    if key in WORST_CASE_METRICS and math.isnan(value):
        return _num(row.get("diagonal_mm"))
    if key in ("sensitivity", "precision"):
        n_pred, n_truth = _num(row.get("pred_voxels")), _num(row.get("truth_voxels"))
        if (key == "sensitivity" and n_truth == 0) or (key == "precision" and n_pred == 0 == n_truth):
            return NAN
        if key == "precision" and n_pred == 0 < n_truth:
            return 0.0
    return value


def _count(v: Any) -> int:
    f = _num(v)
    return int(f) if math.isfinite(f) else 0


def _clean(v: float) -> float | None:
    """JSON-safe number: NaN/inf -> None (``null``)."""
    return float(v) if v is not None and math.isfinite(v) else None


def _mean(vals: Sequence[float]) -> float | None:
    vals = [v for v in vals if math.isfinite(v)]
    return _clean(float(np.mean(vals))) if vals else None


def _std(vals: Sequence[float]) -> float | None:
    """Sample standard deviation (ddof=1) over defined values; None with fewer than two."""
    vals = [v for v in vals if math.isfinite(v)]
    return _clean(float(np.std(vals, ddof=1))) if len(vals) >= 2 else None


def summarize(rows: list[dict], class_names: Sequence[str], lesion_iou: float = DEFAULT_IOU_THRESHOLD) -> dict:
    """The metric part of ``summary.json`` from per-case rows (with ``case`` and ``class``).

    ``per_class[name]`` holds means over cases and sample standard deviations (``*_std``, ddof=1, null
    with fewer than two values). HD95 and ASSD of a case where exactly one of truth and prediction is
    empty count at the case's ``diagonal_mm`` (:func:`with_worst_case`); ``hd95_undefined`` counts those
    cases and ``hd95_nan_dropped`` / ``assd_nan_dropped`` are the means without them. Other undefined
    values (RVE of an empty truth) are left out. ``lesion_sensitivity`` is matched / truth lesions
    pooled over cases (null if there are none), ``lesion_fp_per_scan`` unmatched predicted components per
    case (both for lesion classes; ``lesion`` holds their lesion-wise block, matched at ``lesion_iou``:
    :func:`ctbench.lesion_metrics.summarize_lesions`), ``nsd_tolerance_mm`` the ``[smallest, largest]`` tolerance used.
    ``mean_dice``/``mean_iou``/``mean_hd95``/``mean_hd95_nan_dropped`` are means over the classes in
    ``class_names`` of those per-class means. Undefined numbers are ``None`` (JSON null).
    """
    per_class: dict[str, dict] = {}
    for name in class_names:
        sel = [r for r in rows if str(r["class"]) == str(name)]
        col = {k: [with_worst_case(r, k) for r in sel] for k in _FLOAT_COLUMNS}
        entry: dict[str, Any] = {"n": len(sel)}
        for k in ("dice", "iou", "hd95"):
            entry[k] = _mean(col[k])
            entry[f"{k}_std"] = _std(col[k])
        for k in ("assd", "nsd", "sensitivity", "precision", "rve"):
            entry[k] = _mean(col[k])
        for k in WORST_CASE_METRICS:
            entry[f"{k}_nan_dropped"] = _mean([_num(r.get(k)) for r in sel])
        entry["hd95_undefined"] = sum(1 for r in sel if not math.isfinite(_num(r.get("hd95"))))
        tolerances = [v for v in col["nsd_tolerance_mm"] if math.isfinite(v)]
        entry["nsd_tolerance_mm"] = [min(tolerances), max(tolerances)] if tolerances else None
        n_les = sum(_count(r.get("lesions_truth")) for r in sel)
        n_det = sum(_count(r.get("lesions_detected")) for r in sel)
        n_fp = sum(_count(r.get("lesion_fp")) for r in sel)
        lesion_class = is_lesion_class(str(name))
        entry["lesion_sensitivity"] = n_det / n_les if n_les and lesion_class else None
        entry["lesion_fp_per_scan"] = n_fp / len(sel) if sel and lesion_class else None
        per_class[str(name)] = entry

    def over_classes(key: str) -> float | None:
        vals = [per_class[str(n)][key] for n in class_names]
        return _mean([v for v in vals if v is not None])

    return {
        "n_cases": len({str(r["case"]) for r in rows}),
        "mean_dice": over_classes("dice"),
        "mean_iou": over_classes("iou"),
        "mean_hd95": over_classes("hd95"),
        "mean_hd95_nan_dropped": over_classes("hd95_nan_dropped"),
        "per_class": per_class,
        "mean_over_classes": [str(n) for n in class_names],
        "lesion": summarize_lesions(rows, class_names, lesion_iou),
        "empty_policy": EMPTY_POLICY,
        "nsd_tolerance_policy": NSD_TOLERANCE_POLICY,
        "surface_distance": surface_distance.DEFINITION,
    }


# --------------------------------------------------------------------------------------------------
# per_case.csv
# --------------------------------------------------------------------------------------------------


def _cell(key: str, v: Any) -> str:
    if v is None:
        return ""
    if key in _STR_COLUMNS:
        return str(v)
    if key in _INT_COLUMNS:
        return str(int(v))
    f = float(v)
    return repr(f) if math.isfinite(f) else ""


def write_per_case_csv(rows: list[dict], path: str | os.PathLike) -> None:
    """Write ``per_case.csv`` atomically, columns :data:`PER_CASE_COLUMNS`; NaN -> empty cell."""
    from ctbench.atomic import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PER_CASE_COLUMNS)
    for r in rows:
        w.writerow([_cell(k, r.get(k)) for k in PER_CASE_COLUMNS])
    atomic_write_text(path, buf.getvalue())


def read_per_case_csv(path: str | os.PathLike) -> list[dict]:
    """Read ``per_case.csv``: ``case``/``class`` as str, counts as int, metrics as float (empty -> NaN).

    Raises:
        ValueError: a column of :data:`REQUIRED_COLUMNS` is missing or a cell is not a number.
    """
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"lacks column(s) {', '.join(missing)}")
        for line, rec in enumerate(reader, start=2):
            row: dict[str, Any] = {}
            for k, v in rec.items():
                try:
                    if k in _STR_COLUMNS:
                        row[k] = v
                    elif k in _INT_COLUMNS:
                        row[k] = int(float(v)) if v not in ("", None) else 0
                    else:
                        row[k] = float(v) if v not in ("", None) else NAN
                except (TypeError, ValueError):
                    raise ValueError(f"line {line}: {k}={v!r} is not a number") from None
            out.append(row)
    return out
