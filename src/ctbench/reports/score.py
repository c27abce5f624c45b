"""``ctbench score PRED_DIR TRUTH_DIR``: judge any tool's NIfTI label maps against ground truth.

Cases are matched by file name without ``.nii``/``.nii.gz`` (``CASE.nii`` matches ``CASE.nii.gz``).
Each pair must share its geometry (shape, voxel spacing and affine, i.e. origin and direction, within
1e-3 mm). A prediction on the truth's world grid stored in another voxel order (axes flipped or
swapped, as dcm2niix and TotalSegmentator write the rows of a DICOM series against ctbench's
converter) is reoriented onto the truth's voxel order first, with one line saying so. A missing prediction, an extra prediction, a geometry mismatch or an unreadable file is
listed per case and skipped; the rest is still scored, and the exit status is 1 if any case was
skipped, else 0. Writes ``per_case.csv`` and ``summary.json`` (docs/report-format.md) into ``--out``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctbench.errors import CTBenchError

#: Geometry tolerance in mm (spacing and affine entries).
GEOMETRY_TOL_MM = 1e-3

_NIFTI = re.compile(r"^(?P<case>.+?)\.nii(\.gz)?$", re.IGNORECASE)


@dataclass
class Problem:
    case: str
    reason: str


def parse_labels(items: Sequence[str] | None) -> dict[int, str] | None:
    """``["1=liver", "2=spleen"]`` -> ``{1: "liver", 2: "spleen"}``; None stays None."""
    if items is None:
        return None
    out: dict[int, str] = {}
    for item in items:
        m = re.fullmatch(r"\s*(\d+)\s*=\s*(\S.*?)\s*", item)
        if not m:
            raise CTBenchError(f"--labels: cannot read {item!r}; write ID=NAME pairs, e.g. --labels 1=liver 2=spleen",
                               exit_code=2)
        lid, name = int(m.group(1)), m.group(2)
        if lid == 0:
            raise CTBenchError(f"--labels: {item!r} names the background (0), which is never scored; "
                               "list foreground labels only", exit_code=2)
        if lid in out or name in out.values():
            raise CTBenchError(f"--labels: {item!r} repeats a label id or name; give each class once", exit_code=2)
        out[lid] = name
    return dict(sorted(out.items()))


def _nifti_files(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    """case -> file for the NIfTI files directly in ``folder``; two files for one case are a problem."""
    found: dict[str, list[Path]] = {}
    for f in sorted(folder.iterdir()):
        m = _NIFTI.match(f.name)
        if m and not f.name.startswith(".") and f.is_file():
            found.setdefault(m.group("case"), []).append(f)
    files, problems = {}, []
    for case, paths in found.items():
        if len(paths) > 1:
            problems.append(Problem(case, f"several files for one case in {folder}: "
                                          f"{', '.join(p.name for p in paths)}; keep one"))
        else:
            files[case] = paths[0]
    return files, problems


@dataclass
class Volume:
    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, ...]


def _load(path: Path) -> Volume:
    """Read an integer label map; raises ValueError with a one-line reason."""
    import nibabel as nib

    from ctbench.data.voxel_budget import check_voxel_budget

    try:
        check_voxel_budget(path, None)  # from the header: a huge or truncated file fails here, before allocating
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        zooms = tuple(float(z) for z in img.header.get_zooms())
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as err:  # nibabel raises many types for broken files
        raise ValueError(f"cannot read {path.name}: {type(err).__name__}: {err}".splitlines()[0]) from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise ValueError(f"{path.name} is not a 2D/3D label map (shape {data.shape})")
    if not np.issubdtype(data.dtype, np.integer):
        if data.dtype == bool:
            data = data.astype(np.uint8)
        elif not np.all(np.isfinite(data)):
            raise ValueError(f"{path.name} holds NaN/inf: not a label map")
        else:
            rounded = np.rint(data)
            bad = np.flatnonzero(rounded != data)
            if bad.size:
                raise ValueError(f"{path.name} holds non-integer values (e.g. {data.flat[bad[0]]:.4g}): write the "
                                 "label map (argmax), not probabilities")
            data = rounded.astype(np.int64)
    if data.size and data.min() < 0:
        raise ValueError(f"{path.name} holds negative labels (min {data.min()}): not a label map")
    return Volume(data=data, affine=affine, spacing=zooms[: data.ndim])


def geometry_mismatch(pred: Volume, truth: Volume, tol: float = GEOMETRY_TOL_MM) -> str | None:
    """One line describing how ``pred``'s geometry differs from ``truth``'s, or None if it matches."""
    if pred.data.shape != truth.data.shape:
        return f"geometry differs from truth: shape {pred.data.shape} vs {truth.data.shape}"
    sp_p, sp_t = np.asarray(pred.spacing), np.asarray(truth.spacing)
    if sp_p.shape != sp_t.shape or np.max(np.abs(sp_p - sp_t)) > tol:
        fmt = ", ".join
        return (f"geometry differs from truth: spacing ({fmt(f'{s:.4g}' for s in sp_p)}) mm vs "
                f"({fmt(f'{s:.4g}' for s in sp_t)}) mm")
    diff = np.abs(pred.affine - truth.affine)
    if np.max(diff[:3, 3]) > tol:
        o_p, o_t = pred.affine[:3, 3], truth.affine[:3, 3]
        return (f"geometry differs from truth: origin ({', '.join(f'{v:.4g}' for v in o_p)}) vs "
                f"({', '.join(f'{v:.4g}' for v in o_t)}) mm")
    if np.max(diff) > tol:
        return f"geometry differs from truth: direction/affine differs by up to {np.max(diff):.4g} mm"
    return None


def reorient_to(pred: Volume, truth: Volume) -> tuple[Volume, str] | None:
    """``pred`` in ``truth``'s voxel order when the two share one world grid up to flipped or swapped voxel
    axes, with a few words on what was flipped or swapped; None when no such reordering exists."""
    import nibabel.orientations as nio

    if pred.data.ndim != 3 or truth.data.ndim != 3:
        return None
    transform = nio.ornt_transform(nio.io_orientation(pred.affine), nio.io_orientation(truth.affine))
    if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
        return None
    data = nio.apply_orientation(pred.data, transform)
    affine = pred.affine @ nio.inv_ornt_aff(transform, pred.data.shape)
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    moved = Volume(data=np.ascontiguousarray(data), affine=affine, spacing=spacing)
    if geometry_mismatch(moved, truth) is not None:
        return None
    axes = "xyz"
    flipped = [axes[int(i)] for i, (_, sign) in enumerate(transform) if sign < 0]
    swapped = [f"{axes[i]}->{axes[int(to)]}" for i, (to, _) in enumerate(transform) if int(to) != i]
    how = "; ".join(part for part in (f"flipped {', '.join(flipped)}" if flipped else "",
                                      f"swapped {', '.join(swapped)}" if swapped else "") if part)
    return moved, how


def _present(data: np.ndarray) -> set[int]:
    counts = np.bincount(data.ravel().astype(np.int64, copy=False)) if data.size else np.zeros(1, int)
    return {int(i) for i in np.flatnonzero(counts) if i != 0}


def _fmt(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("ctbench", "numpy", "scipy", "monai", "nibabel", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def score(pred_dir: str | os.PathLike, truth_dir: str | os.PathLike, out: str | os.PathLike = "score",
          labels: Mapping[int, str] | None = None, tolerance_mm: float = 1.0, console: Any = None) -> int:
    """Score every prediction in ``pred_dir`` against ``truth_dir``; write per_case.csv + summary.json.

    Returns 0 if every case was scored, 1 if any was skipped (listed on the console and in
    ``summary.json`` under ``skipped``).
    """
    from rich.console import Console
    from rich.table import Table

    from ctbench.atomic import atomic_write_json
    from ctbench.metrics import case_metrics, summarize, write_per_case_csv

    console = console or Console()
    pred_dir, truth_dir, out = Path(pred_dir), Path(truth_dir), Path(out)
    for what, d in (("PRED_DIR", pred_dir), ("TRUTH_DIR", truth_dir)):
        if not d.is_dir():
            raise CTBenchError(f"{what} {d} is not a folder; give the folder that holds the *.nii.gz label maps")
    if not (isinstance(tolerance_mm, int | float) and math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise CTBenchError(f"--tolerance {tolerance_mm} is not a distance; give a number of mm >= 0, e.g. 1",
                           exit_code=2)
    if out.exists() and not out.is_dir():
        raise CTBenchError(f"--out {out} is a file; give a folder for per_case.csv and summary.json")

    truths, problems = _nifti_files(truth_dir)
    preds, pred_problems = _nifti_files(pred_dir)
    problems += pred_problems
    if not truths and not problems:
        raise CTBenchError(f"no *.nii or *.nii.gz files in TRUTH_DIR {truth_dir}; give the ground-truth folder "
                           "(e.g. an MSD/nnU-Net labelsTr/)")
    bad_cases = {p.case for p in problems}
    for case in sorted(set(preds) - set(truths) - bad_cases):
        problems.append(Problem(case, f"extra prediction {preds[case].name}: no truth of that name in {truth_dir}"))

    per_case: dict[str, dict[int, dict]] = {}  # case -> label -> row
    reordered: list[dict[str, str]] = []  # predictions reoriented onto their truth's voxel order
    truth_labels: set[int] = set()
    pred_labels: set[int] = set()
    dims: set[int] = set()
    with console.status("scoring...") if console.is_terminal else nullcontext():
        for case in sorted(set(truths) - bad_cases):
            if case not in preds:
                problems.append(Problem(case, f"missing prediction: no {case}.nii(.gz) in {pred_dir}"))
                continue
            try:
                truth = _load(truths[case])
                pred = _load(preds[case])
            except ValueError as err:
                problems.append(Problem(case, str(err)))
                continue
            reason = geometry_mismatch(pred, truth)
            reoriented = reorient_to(pred, truth) if reason else None
            if reoriented:
                pred, how = reoriented
                reordered.append({"case": case, "voxel_axes": how})
                console.print(f"{case}: prediction is on the truth's world grid in another voxel order ({how}); "
                              "reoriented to the truth's order", soft_wrap=True)
            elif reason:
                problems.append(Problem(case, reason))
                continue
            in_truth = _present(truth.data)
            truth_labels |= in_truth
            pred_labels |= _present(pred.data)
            wanted = dict(labels) if labels is not None else {c: f"label_{c}" for c in in_truth | _present(pred.data)}
            rows = case_metrics(pred.data, truth.data, truth.spacing, wanted, tolerance_mm=tolerance_mm)
            per_case[case] = dict(zip(wanted, rows, strict=True))
            dims.add(truth.data.ndim)

    if labels is None:
        if per_case and not truth_labels:
            raise CTBenchError(f"the truths in {truth_dir} hold no foreground label; name the classes with "
                               "--labels ID=NAME (e.g. --labels 1=liver)")
        classes = {c: f"label_{c}" for c in sorted(truth_labels)}
    else:
        classes = dict(labels)
    # a --labels class in no truth and no prediction has nothing to score: Dice 1 by the empty-case rule would
    # lift the means, so it is reported as absent and left out
    absent = {c: n for c, n in classes.items() if per_case and c not in truth_labels | pred_labels}
    classes = {c: n for c, n in classes.items() if c not in absent}
    if absent:
        listed = ", ".join(f"{c}={n}" for c, n in absent.items())
        console.print(f"[yellow]warning: label {listed} is absent from every truth and prediction: reported as absent, "
                      "left out of the means[/yellow]", soft_wrap=True)

    rows: list[dict] = []
    for case, by_label in per_case.items():
        for c, name in classes.items():
            row = by_label.get(c)
            if row is None:  # label absent from this case's truth and prediction
                row = case_metrics(np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8), (1.0, 1.0), {c: name})[0]
            rows.append({"case": case, **row, "class": name})

    names = list(classes.values())
    metrics = summarize(rows, names)
    problems.sort(key=lambda p: p.case)
    summary = {
        "status": "complete",
        "source": "ctbench score",
        "model": pred_dir.resolve().name,
        "loss": None,
        "dataset": truth_dir.resolve().name,
        "dims": (dims.pop() if len(dims) == 1 else sorted(dims)) if dims else None,
        "split": "score",
        "scope": "whole-volume",
        "pred_dir": str(pred_dir.resolve()),
        "truth_dir": str(truth_dir.resolve()),
        "labels": {str(c): n for c, n in classes.items()},
        "absent_labels": {str(c): n for c, n in absent.items()},
        "tolerance_mm": float(tolerance_mm),
        **metrics,
        "reoriented": reordered,
        "n_skipped": len(problems),
        "skipped": [{"case": p.case, "reason": p.reason} for p in problems],
        "versions": _versions(),
    }
    write_per_case_csv(rows, out / "per_case.csv")
    atomic_write_json(out / "summary.json", summary)

    if problems:
        t = Table(title=f"{len(problems)} case(s) skipped", title_justify="left", show_lines=False)
        t.add_column("case", style="bold")
        t.add_column("problem", style="red", overflow="fold")
        for p in problems:
            t.add_row(p.case, p.reason)
        console.print(t)
    t = Table(title=f"{metrics['n_cases']} case(s) scored (mean ± std over cases)", title_justify="left")
    for col in ("class", "dice", "iou", "hd95 mm", "hd95 undefined"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for name in names:
        e = metrics["per_class"][name]
        t.add_row(name, _fmt(e["dice"], e["dice_std"]), _fmt(e["iou"], e["iou_std"]),
                  _fmt(e["hd95"], e["hd95_std"], 2), str(e["hd95_undefined"]))
    for name in absent.values():
        t.add_row(name, "absent", "", "", "", style="dim")
    if names:
        t.add_row("mean", _fmt(metrics["mean_dice"], None), _fmt(metrics["mean_iou"], None),
                  _fmt(metrics["mean_hd95"], None, 2), "", style="bold")
    console.print(t)
    console.print(f"wrote {out / 'per_case.csv'} and {out / 'summary.json'}", soft_wrap=True)
    if problems:
        console.print(f"[red]{len(problems)} case(s) skipped; exit status 1[/red]")
    return 1 if problems else 0


def run_cli(args: Any) -> int:
    """Entry point of ``ctbench score`` (argparse namespace from ``ctbench.cli``)."""
    return score(args.pred_dir, args.truth_dir, out=args.out, labels=parse_labels(args.labels),
                 tolerance_mm=args.tolerance)
