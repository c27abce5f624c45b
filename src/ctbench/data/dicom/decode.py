"""Pixel data -> Hounsfield units, on the grid of :mod:`ctbench.data.dicom.geometry`.

HU = stored value x RescaleSlope + RescaleIntercept (DICOM PS3.3 C.11.1.1.2), per slice, computed in
int32/float64 so that unsigned 16-bit data plus a negative intercept never wraps. Pixel data is decoded by
pydicom; when pydicom has no decoder for a transfer syntax, SimpleITK's GDCM decodes the slice instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from ctbench.data.dicom.geometry import POSITION_TOL_MM, SPACING_REL_TOL
from ctbench.data.dicom.headers import one_line, relative, tag_float, tag_str, transfer_syntax
from ctbench.data.dicom.types import DicomSeries, Geometry
from ctbench.errors import CTBenchError

#: HU written into grid slices that no source slice covers (air)
FILL_HU = -1024


class _DecodeError(Exception):
    pass


@dataclass
class GridPlan:
    """Where each grid slice along the normal comes from: ``(i, w)`` = ``(1 - w) * source[i] + w * source[i + 1]``.

    ``filled`` lists the grid slices inside a gap (``FILL_HU``), ``interpolated`` those between two
    source slices that are not on the grid; every other grid slice is one source slice, unmoved.
    """

    weights: list[tuple[int, float]] = field(default_factory=list)
    filled: list[int] = field(default_factory=list)
    interpolated: list[int] = field(default_factory=list)


def decode_slice(path: Path, root: Path | None) -> tuple[np.ndarray, float, float, bool]:
    """(values, slope, intercept, already_hu) for one file; values are stored values unless ``already_hu``."""
    ds = pydicom.dcmread(path, force=True)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise _DecodeError(f"{relative(path, root)}: no pixel data")
    slope = tag_float(ds, "RescaleSlope")
    intercept = tag_float(ds, "RescaleIntercept")
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(ds.pixel_array), slope, intercept, False
    except Exception as err:  # noqa: BLE001 - no decoder, corrupt stream ...
        pydicom_error = one_line(err)
    try:  # GDCM (inside SimpleITK) decodes JPEG, JPEG-LS, JPEG 2000 and RLE; it applies the rescale itself
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.SetImageIO("GDCMImageIO")
        arr = sitk.GetArrayFromImage(reader.Execute())
        return (arr[0] if arr.ndim == 3 else arr), slope, intercept, True
    except Exception:  # noqa: BLE001
        pass
    try:
        compressed = pydicom.uid.UID(tag_str(getattr(ds, "file_meta", None), "TransferSyntaxUID")).is_compressed
    except Exception:  # noqa: BLE001
        compressed = False
    hint = ("install pylibjpeg with pylibjpeg-openjpeg (JPEG 2000) or pylibjpeg-libjpeg (JPEG)" if compressed
            else "the file is probably truncated or corrupt")
    raise _DecodeError(f"cannot decode the pixel data of {relative(path, root)} (transfer syntax "
                       f"{transfer_syntax(ds)}): {pydicom_error}; {hint}")


def to_hu(values: np.ndarray, slope: float, intercept: float, already_hu: bool) -> np.ndarray:
    """HU in int32 (exact integer rescale) or float64: never in the stored dtype, which could wrap."""
    if already_hu:
        return values.astype(np.int32) if np.issubdtype(values.dtype, np.integer) else values.astype(np.float64)
    if np.issubdtype(values.dtype, np.integer) and float(slope).is_integer() and float(intercept).is_integer():
        return values.astype(np.int64).astype(np.int32) * int(slope) + int(intercept)
    return values.astype(np.float64) * slope + intercept


def plan_grid(geo: Geometry) -> GridPlan:
    """The source of every slice of the even grid ``k * spacing[2]`` along the normal.

    A grid slice within tolerance of a source slice is that slice; one inside a gap (two source slices
    more than 1.5 grid steps apart) is filled with ``FILL_HU``; any other is interpolated linearly between
    its two neighbours along the normal. No source slice is ever moved.
    """
    dz, positions = geo.spacing[2], geo.positions
    tol = SPACING_REL_TOL * dz + POSITION_TOL_MM
    plan = GridPlan()
    for k in range(geo.shape[2]):
        z = k * dz
        i = int(np.clip(np.searchsorted(positions, z, side="right") - 1, 0, len(positions) - 2))
        lo, hi = positions[i], positions[i + 1]
        if abs(z - lo) <= tol:
            plan.weights.append((i, 0.0))
        elif abs(z - hi) <= tol:
            plan.weights.append((i, 1.0))
        else:
            plan.weights.append((i, float((z - lo) / (hi - lo))))
            (plan.filled if hi - lo > 1.5 * dz else plan.interpolated).append(k)
    return plan


def place_on_grid(slices: np.ndarray, geo: Geometry) -> np.ndarray:
    """Source slices ``[n, row, col]`` on the grid of :func:`plan_grid` (float32 when any is interpolated)."""
    plan = plan_grid(geo)
    dtype = np.float32 if plan.interpolated else slices.dtype
    out = np.empty((geo.shape[2], *slices.shape[1:]), dtype=dtype)
    filled = set(plan.filled)
    for k, (i, w) in enumerate(plan.weights):
        if k in filled:
            out[k] = FILL_HU
        elif w == 0.0 or w == 1.0:
            out[k] = slices[i + int(w)]
        else:
            out[k] = (1 - w) * slices[i].astype(np.float32) + w * slices[i + 1].astype(np.float32)
    return out


def _untilt(vol: np.ndarray, geo: Geometry) -> np.ndarray:
    """Shift each slice in-plane so that the tilted stack lies on the orthogonal grid of slice 0 (as dcm2niix)."""
    from scipy import ndimage

    row, col = geo.direction[:, 0], geo.direction[:, 1]
    dx, dy, _ = geo.spacing
    out = np.empty(vol.shape, dtype=np.float32)
    fill = float(vol.min())
    for k in range(vol.shape[0]):
        shift = (float(geo.offsets[k] @ col) / dy, float(geo.offsets[k] @ row) / dx)
        out[k] = ndimage.shift(vol[k].astype(np.float32), shift, order=1, mode="constant", cval=fill)
    return out


def load_volume(series: DicomSeries, force: bool) -> np.ndarray:
    """The series on its grid in HU, ``[slice, row, column]`` (int16 when exact and in range, else float32)."""
    geo = series.geometry
    assert geo is not None
    nx, ny, _ = geo.shape
    slices = []
    for path in series.files:
        try:
            values, slope, intercept, already = decode_slice(path, series.root)
        except _DecodeError as err:
            raise CTBenchError(str(err)) from None
        if values.shape != (ny, nx):
            raise CTBenchError(f"{relative(path, series.root)}: pixel data is {values.shape[1]}x{values.shape[0]}, "
                               f"the header says {nx}x{ny}")
        slices.append(to_hu(values, slope, intercept, already))
    if all(np.issubdtype(s.dtype, np.integer) for s in slices):
        vol = np.stack(slices).astype(np.int32)
        lo, hi = int(vol.min()), int(vol.max())
        in_range = np.iinfo(np.int16).min <= min(lo, FILL_HU) and hi <= np.iinfo(np.int16).max
        vol = vol.astype(np.int16 if in_range else np.float32)
    else:
        vol = np.stack([s.astype(np.float64) for s in slices]).astype(np.float32)
    if force and geo.tilt_deg:
        vol = _untilt(vol, geo)
    return vol if geo.even else place_on_grid(vol, geo)


def load_hu(series: DicomSeries, force: bool = False) -> np.ndarray:
    """The volume of ``series`` in HU on its grid, as an array ``[slice, row, column]`` (int16 or float32);
    one line naming the problems when it has some that ``force`` does not cover."""
    if not series.is_ct_volume:
        raise CTBenchError(f"series {series.label} is not a CT volume: {series.skip_reason}")
    if not series.can_convert(force):
        blocking = [p.message for p in series.problems if not (force and p.forcible)]
        hint = "" if force or not all(p.forcible for p in series.problems) else " (force=True writes it anyway)"
        raise CTBenchError(f"series {series.label}: {'; '.join(blocking)}{hint}")  # the CLI paths check first
    return load_volume(series, force)
