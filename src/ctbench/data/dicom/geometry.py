"""Geometry of a CT series: slices sorted along the slice normal, checked, and the voxel grid they fill.

Slices are sorted by ImagePositionPatient projected on the normal (row x column direction of
ImageOrientationPatient), never by InstanceNumber or file name (DICOM PS3.3 C.7.6.2.1.1). A series
whose slice steps are not all equal does not fit one affine: ``--force`` then writes it on an even grid
along the normal, every source slice at its true position (missing slices filled, see ``decode.py``).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ctbench.data.dicom.headers import orientation, relative, tag_float, tag_floats, tag_int
from ctbench.data.dicom.types import DicomSeries, Geometry, SeriesProblem
from ctbench.data.voxel_budget import DEFAULT_MAX_VOXELS

#: tolerances (mm) for geometry checks
POSITION_TOL_MM = 0.01
ORIENTATION_TOL = 1e-4
#: relative tolerance of slice steps against the smallest step before spacing counts as uneven
SPACING_REL_TOL = 0.01


def _missing_tags(series: DicomSeries, no_pixel_files: set[Path]) -> list[SeriesProblem]:
    """Files without pixel data, and the geometry tags some slices lack."""
    problems: list[SeriesProblem] = []
    missing: Counter[str] = Counter()
    for ds in series.headers:
        for keyword, n in (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6), ("PixelSpacing", 2)):
            if tag_floats(ds, keyword, n) is None:
                missing[keyword] += 1
        if tag_int(ds, "Rows") is None or tag_int(ds, "Columns") is None:
            missing["Rows/Columns"] += 1
    no_pixels = [f for f in series.files if f in no_pixel_files]
    if no_pixels:
        problems.append(SeriesProblem(f"{len(no_pixels)} of {len(series.files)} file(s) have no pixel data "
                                      f"(e.g. {relative(no_pixels[0], series.root)})"))
    if missing:
        text = ", ".join(f"{k} in {v} file(s)" for k, v in sorted(missing.items()))
        problems.append(SeriesProblem(f"missing geometry tags: {text}"))
    return problems


def _mixed_grids(headers: list[Dataset]) -> list[SeriesProblem]:
    """Slices that cannot share one in-plane grid: sizes, orientations or pixel spacings differ."""
    problems: list[SeriesProblem] = []
    sizes = Counter((tag_int(d, "Rows"), tag_int(d, "Columns")) for d in headers)
    if len(sizes) > 1:
        text = ", ".join(f"{c}x{r} ({n} slices)" for (r, c), n in sizes.most_common())
        problems.append(SeriesProblem(f"mixed image sizes: {text}"))
    iops = np.stack([orientation(d) for d in headers])
    if np.abs(iops - iops[0]).max() > ORIENTATION_TOL:
        problems.append(SeriesProblem(f"mixed slice orientations ({len(np.unique(iops.round(4), axis=0))} different)"))
    spacings = np.stack([tag_floats(d, "PixelSpacing", 2) for d in headers])
    if np.abs(spacings - spacings[0]).max() > 1e-4:
        problems.append(SeriesProblem("mixed pixel spacings"))
    return problems


def _axes(ds: Dataset) -> np.ndarray:
    """Columns (row direction, column direction, slice normal), orthonormalised."""
    iop = orientation(ds)
    row = iop[:3] / np.linalg.norm(iop[:3])
    col = iop[3:] - np.dot(iop[3:], row) * row
    col /= np.linalg.norm(col)
    return np.column_stack([row, col, np.cross(row, col)])


def _step_problems(steps: np.ndarray, n: int) -> tuple[list[SeriesProblem], float]:
    """Problems of the slice steps (duplicates, missing slices, uneven spacing) and the grid step they suggest.

    Missing slices are steps that are whole multiples (>= 2) of the smallest step; any other deviation
    beyond ``SPACING_REL_TOL`` is uneven spacing. The grid step is the smallest step when only slices
    are missing, else the median step.
    """
    dup = int(np.sum(steps < POSITION_TOL_MM))
    if dup:
        return [SeriesProblem(f"{dup + 1} slices share a position (two acquisitions, phases or echoes in one "
                              "series?)")], 0.0
    ref = float(steps.min())
    tol = SPACING_REL_TOL * ref + POSITION_TOL_MM
    if np.abs(steps - ref).max() <= tol:
        return [], ref
    multiple = np.rint(steps / ref)
    gaps = np.where((multiple >= 2) & (np.abs(steps - multiple * ref) <= tol))[0]
    odd = np.where(np.abs(steps - multiple * ref) > tol)[0]
    problems = []
    if len(gaps):
        problems.append(SeriesProblem(
            f"missing slices: about {int(np.sum(multiple[gaps] - 1))} missing; largest gap "
            f"{steps[gaps].max():.2f} mm where {ref:.2f} mm is expected (first after slice {int(gaps[0]) + 1} "
            f"of {n})", forcible=True))
    if len(odd) or not len(gaps):
        problems.append(SeriesProblem(
            f"uneven slice spacing: steps {steps.min():.3f} to {steps.max():.3f} mm "
            f"(median {np.median(steps):.3f})", forcible=True))
    return problems, (ref if not len(odd) else float(np.median(steps)))


def _tilt_deg(offsets: np.ndarray, span: float) -> float:
    inplane = np.linalg.norm(offsets, axis=1)
    if inplane.max() <= POSITION_TOL_MM:
        return 0.0
    return math.degrees(math.atan2(float(inplane[-1]), span)) if span > 0 else 90.0


def check_and_sort(series: DicomSeries, no_pixel_files: set[Path]) -> None:
    """Sort ``series`` along the slice normal, record its problems and notes, and set its grid."""
    series.problems.extend(_missing_tags(series, no_pixel_files))
    if series.problems:
        return
    series.problems.extend(_mixed_grids(series.headers))
    if series.problems:
        return
    axes = _axes(series.headers[0])
    ipps = np.stack([tag_floats(d, "ImagePositionPatient", 3) for d in series.headers])
    order = np.argsort(ipps @ axes[:, 2], kind="stable")
    series.files = [series.files[i] for i in order]
    series.headers = [series.headers[i] for i in order]
    ipps = ipps[order]
    first = series.headers[0]
    rel = ipps - ipps[0]
    positions = rel @ axes[:, 2]
    offsets = rel - np.outer(positions, axes[:, 2])
    span, n = float(positions[-1]), len(positions)
    tilt, even = 0.0, True
    if n == 1:
        dz = tag_float(first, "SpacingBetweenSlices") or tag_float(first, "SliceThickness") or 1.0
        series.notes.append(f"single slice: slice spacing {dz:g} mm taken from the header")
        n_grid = 1
    else:
        step_problems, base = _step_problems(np.diff(positions), n)
        series.problems.extend(step_problems)
        even = not step_problems
        n_grid = n if even or base <= 0 else int(round(span / base)) + 1
        dz = span / (n_grid - 1) if span > 0 else 1.0
        in_plane = int(tag_int(first, "Columns")) * int(tag_int(first, "Rows"))
        if in_plane * n_grid > DEFAULT_MAX_VOXELS:
            series.problems.append(SeriesProblem(
                f"the slices span {span:.0f} mm: an even grid of {dz:.3g} mm would hold {n_grid} slices (over "
                f"{DEFAULT_MAX_VOXELS:.0e} voxels); a slice position is probably wrong"))
            return
        if not any(not p.forcible for p in step_problems):
            tilt = _tilt_deg(offsets, span)
        if tilt:
            series.problems.append(SeriesProblem(
                f"gantry tilt of {tilt:.2f} deg (slices shifted in-plane up to "
                f"{np.linalg.norm(offsets, axis=1).max():.2f} mm)", forcible=True))
        header_tilt = tag_float(first, "GantryDetectorTilt")
        if header_tilt and not tilt:
            series.notes.append(f"GantryDetectorTilt {header_tilt:g} deg in the header, but the slice positions "
                                "are orthogonal: positions used")
    dz = dz if dz > 0 else 1.0
    dy, dx = (float(v) for v in tag_floats(first, "PixelSpacing", 2))
    series.geometry = Geometry(shape=(int(tag_int(first, "Columns")), int(tag_int(first, "Rows")), n_grid),
                               spacing=(dx, dy, float(dz)), origin=ipps[0].copy(), direction=axes,
                               positions=positions, offsets=offsets, even=even, tilt_deg=tilt)
