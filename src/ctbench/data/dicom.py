"""DICOM CT series -> Hounsfield-unit volumes: the reader behind ``ctbench convert`` and DICOM input.

Public API (stable; the predict and dataset code use the first four)
-------------------------------------------------------------------
``read_dicom_series(folder, progress=False) -> list[DicomSeries]``
    Walk ``folder`` (any layout, any file names), read headers only and group the files into series.
    Every series is returned, CT or not: ``series.skip_reason`` says why one is not a CT volume
    (MR, SR, localiser, secondary capture ...), ``series.problems`` lists what makes its volume wrong
    (uneven spacing, missing slices, gantry tilt, mixed image sizes ...). Files within a series are
    sorted by ImagePositionPatient projected on the slice normal (row x column direction of
    ImageOrientationPatient), never by InstanceNumber or file name.
``series_to_sitk(series, force=False) -> SimpleITK.Image``
    The volume in HU (int16 when exact, else float32) with ITK's LPS geometry: origin = first slice's
    ImagePositionPatient, direction columns = (row direction, column direction, slice normal),
    spacing = (column spacing, row spacing, slice spacing). Raises :class:`CTBenchError` when the
    series has problems, unless ``force`` (forcible problems only; see below).
``series_to_nifti(series, force=False) -> nibabel.Nifti1Image``
    The same voxels as a NIfTI image: data indexed ``[column, row, slice]``, affine in RAS
    (the LPS affine with its first two rows negated), sform/qform code 1 (scanner), units mm.
``read_dicom_ct(folder, series_number=None, force=False) -> SimpleITK.Image``
    The one CT volume in ``folder`` (for ``ctbench predict`` with a DICOM folder).
``scan_dicom_tree(folder) -> DicomScan``
    ``read_dicom_series`` plus the files that are not DICOM, with one reason each.
``convert_tree(dicom_dir, out_dir, force=False, keep_uids=False) -> ConvertResult`` / ``run_cli(args)``
    ``ctbench convert``: one ``NNN_S<SeriesNumber>_<description>.nii.gz`` + ``.json`` sidecar per
    CT series, a rich summary table, exit 1 when nothing was converted.

Decisions
---------
- Grouping key: SeriesInstanceUID; an empty or missing UID (de-identified exports) falls back to
  StudyInstanceUID + SeriesNumber + FrameOfReferenceUID + modality + orientation + image size +
  description, so such a series still groups stably. Localiser images inside a CT series are dropped
  with a note; a series of localisers only is skipped.
- HU = stored value x RescaleSlope + RescaleIntercept, per slice (slopes may differ between
  slices), computed in int32/float64 so that unsigned 16-bit data plus a negative intercept never
  wraps. Output dtype int16 when every slope/intercept is an integer and the HU range fits int16,
  else float32.
- Pixel data is decoded by pydicom (JPEG 2000 needs ``pylibjpeg`` + ``pylibjpeg-openjpeg``); when
  pydicom has no decoder for a transfer syntax the slice is decoded by SimpleITK's GDCM instead, and
  only when both fail the series fails with one line naming the transfer syntax and the fix.
- Problems that stop a series (``--force`` writes it anyway): uneven slice spacing or missing slices
  (written with the median slice step, from the first slice on), gantry tilt (each slice is shifted
  in-plane onto an orthogonal grid, as dcm2niix does, so that world coordinates stay right).
  Problems ``--force`` cannot fix: mixed image sizes, orientations or pixel spacings, duplicate
  slice positions, missing geometry tags, missing pixel data, multi-frame (enhanced) CT.
- Privacy: the sidecar is built from an allow-list of acquisition facts (no names, IDs, dates,
  institutions, stations, device serials or UIDs). Any text that still contains one of the series'
  identifier strings (patient name parts, IDs, accession number, institution, physicians, UIDs)
  is replaced by ``[removed]``; the same check guards the file names. Paths are not written.
  ``keep_uids=True`` adds the Study/Series/FrameOfReference UIDs to the sidecar on request.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ctbench.errors import CTBenchError

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MULTIFRAME_CT = {"1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT", "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT"}
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

#: tolerances (mm) for geometry checks
POSITION_TOL_MM = 0.01
ORIENTATION_TOL = 1e-4
#: relative tolerance of slice steps against the smallest step before spacing counts as uneven
SPACING_REL_TOL = 0.01
#: file endings that promise DICOM (a non-DICOM file with one of them is reported by name)
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima", ".img"}
#: show a progress bar from this many files on
PROGRESS_MIN_FILES = 100

#: header keywords whose values are patient/site identifiers: never written, and any output text
#: containing one of their values is scrubbed
IDENTIFIER_KEYWORDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthDate",
    "PatientBirthName", "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers",
    "IssuerOfPatientID", "MedicalRecordLocator", "AccessionNumber", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "ReferringPhysicianName", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord", "OperatorsName", "RequestingPhysician",
    "StationName", "DeviceSerialNumber", "StudyID", "StudyInstanceUID", "SeriesInstanceUID",
    "SOPInstanceUID", "FrameOfReferenceUID", "IrradiationEventUID",
)
REMOVED = "[removed]"


# --------------------------------------------------------------------------------------------------
# data classes


@dataclass(frozen=True)
class SeriesProblem:
    """Something that makes a series' volume wrong. ``forcible``: ``--force`` may write it anyway."""

    message: str
    forcible: bool = False

    def __str__(self) -> str:
        return self.message


@dataclass
class Geometry:
    """Voxel grid of a sorted series, in DICOM's LPS patient frame (millimetres).

    ``shape`` and ``spacing`` are (columns, rows, slices); ``direction`` has the unit axes as columns
    (row direction, column direction, slice normal); ``steps`` are the slice-to-slice distances
    along the normal; ``offsets`` the in-plane offset (LPS) of each slice's origin against the
    first slice's normal line (non-zero only with gantry tilt).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: np.ndarray
    direction: np.ndarray
    steps: np.ndarray
    offsets: np.ndarray
    tilt_deg: float = 0.0

    def affine_lps(self) -> np.ndarray:
        aff = np.eye(4)
        aff[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        aff[:3, 3] = self.origin
        return aff

    def affine_ras(self) -> np.ndarray:
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.affine_lps()


@dataclass
class DicomSeries:
    """One series: its files (sorted along the slice normal), pixel-less headers and diagnosis.

    ``key`` is the grouping key (contains UIDs: never written to outputs).
    """

    key: str
    modality: str
    series_number: int | None
    description: str
    files: list[Path]
    headers: list[Dataset]
    root: Path | None = None
    skip_reason: str | None = None
    problems: list[SeriesProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    geometry: Geometry | None = None

    @property
    def is_ct_volume(self) -> bool:
        """A CT image series that can become a volume (possibly with problems)."""
        return self.skip_reason is None

    @property
    def n_slices(self) -> int:
        return len(self.files)

    def can_convert(self, force: bool = False) -> bool:
        if not self.is_ct_volume or self.geometry is None:
            return False
        return all(force and p.forcible for p in self.problems)

    @property
    def label(self) -> str:
        """Short, identifier-free name for messages: ``S3 'CT Body 3.0' (20 files)``."""
        number = "S?" if self.series_number is None else f"S{self.series_number}"
        desc = scrub_text(self.description, identifier_strings(self.headers)) if self.description else ""
        return f"{number} {desc!r} ({self.modality}, {len(self.files)} file{'s' if len(self.files) != 1 else ''})"

    def load_hu(self, force: bool = False) -> np.ndarray:
        """The volume in HU as an array ``[slice, row, column]`` (int16 or float32)."""
        self._require(force)
        return _load_volume(self, force)

    def _require(self, force: bool) -> None:
        if not self.is_ct_volume:
            raise CTBenchError(f"series {self.label} is not a CT volume: {self.skip_reason}")
        if not self.can_convert(force):
            blocking = [p.message for p in self.problems if not (force and p.forcible)]
            hint = "" if force or not all(p.forcible for p in self.problems) else " (--force writes it anyway)"
            raise CTBenchError(f"series {self.label}: {'; '.join(blocking)}{hint}")


@dataclass
class DicomScan:
    """Result of walking a tree: the series found and the files that are not (usable) DICOM."""

    root: Path
    series: list[DicomSeries]
    bad_files: list[tuple[Path, str]]
    n_files: int
    ignored: list[tuple[Path, str]] = field(default_factory=list)


@dataclass
class SeriesOutcome:
    series: DicomSeries
    status: str  # "written", "forced", "problems", "skipped", "failed"
    message: str = ""
    nifti: Path | None = None
    sidecar: Path | None = None


@dataclass
class ConvertResult:
    scan: DicomScan
    outcomes: list[SeriesOutcome]

    @property
    def written(self) -> list[SeriesOutcome]:
        return [o for o in self.outcomes if o.nifti is not None]


# --------------------------------------------------------------------------------------------------
# small helpers


def _rel(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)


def _str(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword, "")
    except Exception:  # noqa: BLE001 - a malformed element must not stop the walk
        return ""
    if value is None:
        return ""
    return str(value).strip()


def _floats(ds: Dataset, keyword: str, n: int) -> np.ndarray | None:
    try:
        value = ds.get(keyword)
        if value is None:
            return None
        arr = np.asarray([float(v) for v in (value if isinstance(value, Sequence) and not isinstance(value, str)
                                            else [value])], dtype=float)
    except Exception:  # noqa: BLE001
        return None
    return arr if arr.size == n and np.all(np.isfinite(arr)) else None


def _int_or_none(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except Exception:  # noqa: BLE001
        return None


def _sop_class(ds: Dataset) -> str:
    uid = _str(ds, "SOPClassUID")
    if not uid and getattr(ds, "file_meta", None) is not None:
        uid = _str(ds.file_meta, "MediaStorageSOPClassUID")
    return uid


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = _str(meta, "TransferSyntaxUID") if meta is not None else ""
    if not uid:
        return "unknown"
    try:
        return f"{pydicom.uid.UID(uid).name} ({uid})"
    except Exception:  # noqa: BLE001
        return uid


def _image_type(ds: Dataset) -> list[str]:
    try:
        value = ds.get("ImageType")
    except Exception:  # noqa: BLE001
        return []
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip().upper() for v in value.split("\\")]
    return [str(v).strip().upper() for v in value]


#: identifier keywords whose value is a person name: their parts (given name, family name) count from
#: 3 characters on; parts of other values (addresses, institution names) from 4, whole values from 3
_PERSON_NAME_KEYWORDS = {"PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
                         "ReferringPhysicianName", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
                         "PhysiciansOfRecord", "OperatorsName", "RequestingPhysician"}


def identifier_strings(headers: Iterable[Dataset]) -> set[str]:
    """Identifier values found in ``headers`` (whole values and their word parts), upper case."""
    found: set[str] = set()
    for ds in headers:
        for keyword in IDENTIFIER_KEYWORDS:
            value = _str(ds, keyword)
            if not value:
                continue
            if len(value) >= 3:
                found.add(value.upper())
            shortest = 3 if keyword in _PERSON_NAME_KEYWORDS else 4
            for part in re.split(r"[\^\s,=\\]+", value):
                if len(part) >= shortest:
                    found.add(part.upper())
    return found


def scrub_text(text: str, identifiers: set[str]) -> str:
    """``text`` unless it contains one of ``identifiers`` as a word (case-insensitive), else ``[removed]``."""
    upper = text.upper()
    for ident in identifiers:
        if ident in upper and re.search(rf"(?<![A-Z0-9]){re.escape(ident)}(?![A-Z0-9])", upper):
            return REMOVED
    return text


def _scrub(value: Any, identifiers: set[str]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, identifiers)
    if isinstance(value, list):
        return [_scrub(v, identifiers) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, identifiers) for k, v in value.items()}
    return value


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    return slug[:limit].rstrip("_")


# --------------------------------------------------------------------------------------------------
# walking and grouping


def _iter_files(root: Path, exclude: Path | None = None) -> list[Path]:
    files: list[Path] = []
    exclude = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if exclude is not None:
            dirnames[:] = [d for d in dirnames if (here / d).resolve() != exclude]
        dirnames.sort()
        files.extend(here / name for name in sorted(filenames))
    return files


#: (group, element) of PixelData, FloatPixelData, DoubleFloatPixelData
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}


def _read_header(path: Path) -> tuple[Dataset | None, str, bool]:
    with warnings.catch_warnings():  # pydicom warns about odd but readable files: not the user's business here
        warnings.simplefilter("ignore")
        return _read_header_quiet(path)


def _read_header_quiet(path: Path) -> tuple[Dataset | None, str, bool]:
    """(header, "", has_pixel_data) for a DICOM file, else (None, reason, False).

    The header is read with ``stop_before_pixels``; pydicom then leaves the file at the pixel data
    element, so peeking at the next tag tells whether there is pixel data without reading it.
    """
    try:
        size = path.stat().st_size
    except OSError as err:
        return None, f"cannot read ({err.strerror})", False
    if size == 0:
        return None, "empty file (0 bytes)", False
    has_pixels = False
    forced = False
    try:
        try:
            with open(path, "rb") as fp:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
                tag = fp.read(4)
        except InvalidDicomError:
            # no 128-byte preamble + "DICM": old or raw datasets; a forced read must look like DICOM
            forced = True
            with open(path, "rb") as fp:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
                tag = fp.read(4)
            if not (_sop_class(ds) or _str(ds, "Modality")):
                return None, "not a DICOM file", False
        if len(tag) == 4:
            little = (int.from_bytes(tag[:2], "little"), int.from_bytes(tag[2:], "little"))
            big = (int.from_bytes(tag[:2], "big"), int.from_bytes(tag[2:], "big"))
            has_pixels = little in _PIXEL_TAGS or big in _PIXEL_TAGS
        if "Deflate" in _transfer_syntax(ds):  # the stream position is not the file's: decide when loading
            has_pixels = True
    except Exception as err:  # noqa: BLE001 - truncated or corrupt
        return None, ("not a DICOM file" if forced else f"corrupt DICOM file ({_one_line(err)})"), False
    try:  # force parsing now, so that a corrupt element fails here and not later
        _ = [elem.keyword for elem in ds]
    except Exception as err:  # noqa: BLE001
        return None, f"corrupt DICOM header ({_one_line(err)})", False
    return ds, "", has_pixels


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _orientation(ds: Dataset) -> np.ndarray | None:
    return _floats(ds, "ImageOrientationPatient", 6)


def _group_key(ds: Dataset) -> str:
    uid = _str(ds, "SeriesInstanceUID")
    if uid:
        return f"uid:{uid}"
    iop = _orientation(ds)
    iop_key = "none" if iop is None else ",".join(f"{v:.3f}" for v in iop)
    parts = [_str(ds, k) for k in ("StudyInstanceUID", "SeriesNumber", "FrameOfReferenceUID", "Modality",
                                   "Rows", "Columns", "SeriesDescription")]
    return "fallback:" + "|".join(parts + [iop_key])


def scan_dicom_tree(folder: str | os.PathLike, progress: bool = False, exclude: str | os.PathLike | None = None,
                    console: Any = None) -> DicomScan:
    """Walk ``folder``, read every file's header and group DICOM files into diagnosed series."""
    root = Path(folder)
    if not root.exists():
        raise CTBenchError(f"{root}: no such folder; give the folder that holds the DICOM files")
    if not root.is_dir():
        raise CTBenchError(f"{root} is not a folder; give the folder that holds the DICOM files")
    files = _iter_files(root, Path(exclude) if exclude is not None else None)
    groups: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    no_pixels: set[Path] = set()
    bad: list[tuple[Path, str]] = []
    ignored: list[tuple[Path, str]] = []

    def visit(path: Path) -> None:
        ds, reason, has_pixels = _read_header(path)
        if ds is None:
            bad.append((path, reason))
        elif _sop_class(ds) == DICOMDIR_SOP_CLASS:
            ignored.append((path, "DICOMDIR index file (not needed: the tree is walked)"))
        else:
            groups[_group_key(ds)].append((path, ds))
            if not has_pixels:
                no_pixels.add(path)

    if progress and len(files) >= PROGRESS_MIN_FILES:
        from rich.progress import Progress

        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("reading DICOM headers", total=len(files))
            for path in files:
                visit(path)
                bar.advance(task)
    else:
        for path in files:
            visit(path)

    series = [_diagnose(key, members, root, no_pixels) for key, members in groups.items()]
    series.sort(key=lambda s: (s.series_number if s.series_number is not None else -1, s.description,
                               s.modality, str(s.files[0]) if s.files else ""))
    return DicomScan(root=root, series=series, bad_files=bad, n_files=len(files), ignored=ignored)


def read_dicom_series(folder: str | os.PathLike, progress: bool = False) -> list[DicomSeries]:
    """Every series under ``folder`` (headers only, sorted, diagnosed). See the module docstring."""
    return scan_dicom_tree(folder, progress=progress).series


# --------------------------------------------------------------------------------------------------
# diagnosis: what kind of series, sorted geometry, problems


def _diagnose(key: str, members: list[tuple[Path, Dataset]], root: Path | None,
              no_pixels: set[Path] = frozenset()) -> DicomSeries:
    first = members[0][1]
    modality = _str(first, "Modality").upper() or "?"
    series = DicomSeries(key=key, modality=modality, series_number=_int_or_none(first, "SeriesNumber"),
                         description=_str(first, "SeriesDescription"),
                         files=[p for p, _ in members], headers=[d for _, d in members], root=root)
    sop = _sop_class(first)
    if modality != "CT":
        kinds = {"SR": "structured report", "RTSTRUCT": "RT structure set", "SEG": "segmentation",
                 "OT": "other/secondary capture", "PR": "presentation state", "KO": "key object selection",
                 "REG": "registration", "RTDOSE": "RT dose", "RTPLAN": "RT plan", "DOC": "document"}
        what = kinds.get(modality, "")
        series.skip_reason = f"{modality} series{' (' + what + ')' if what else ''}: not CT"
        return series
    if sop.startswith(SECONDARY_CAPTURE_PREFIX):
        series.skip_reason = "secondary capture (screenshot or dose page), not an image volume"
        return series
    if sop in MULTIFRAME_CT or (_int_or_none(first, "NumberOfFrames") or 1) > 1:
        series.skip_reason = f"multi-frame {MULTIFRAME_CT.get(sop, 'CT')} is not supported; export single-frame CT"
        return series
    if sop and sop != CT_IMAGE_STORAGE:
        series.skip_reason = f"SOP class {sop} is not CT Image Storage"
        return series

    # drop localisers (scouts) inside an otherwise axial series
    scouts = [i for i, d in enumerate(series.headers) if "LOCALIZER" in _image_type(d)]
    if len(scouts) == len(series.headers):
        series.skip_reason = "localizer/scout images, not a volume"
        return series
    if scouts:
        keep = [i for i in range(len(series.headers)) if i not in set(scouts)]
        series.files = [series.files[i] for i in keep]
        series.headers = [series.headers[i] for i in keep]
        series.notes.append(f"{len(scouts)} localizer image(s) in the series ignored")
    if any(int(_int_or_none(d, "SamplesPerPixel") or 1) != 1 for d in series.headers):
        series.skip_reason = "colour (RGB) images, not CT intensities"
        return series

    _check_and_sort(series, no_pixels)
    return series


def _check_and_sort(series: DicomSeries, no_pixel_files: set[Path]) -> None:
    headers, files = series.headers, series.files
    problems = series.problems

    # tags every slice needs
    missing: Counter[str] = Counter()
    for ds in headers:
        for keyword, n in (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6), ("PixelSpacing", 2)):
            if _floats(ds, keyword, n) is None:
                missing[keyword] += 1
        if _int_or_none(ds, "Rows") is None or _int_or_none(ds, "Columns") is None:
            missing["Rows/Columns"] += 1
    no_pixels = [f for f in files if f in no_pixel_files]
    if no_pixels:
        problems.append(SeriesProblem(
            f"{len(no_pixels)} of {len(files)} file(s) have no pixel data (e.g. {_rel(no_pixels[0], series.root)})"))
    if missing:
        text = ", ".join(f"{k} in {v} file(s)" for k, v in sorted(missing.items()))
        problems.append(SeriesProblem(f"missing geometry tags: {text}"))
        return

    sizes = Counter((_int_or_none(d, "Rows"), _int_or_none(d, "Columns")) for d in headers)
    if len(sizes) > 1:
        text = ", ".join(f"{c}x{r} ({n} slices)" for (r, c), n in sizes.most_common())
        problems.append(SeriesProblem(f"mixed image sizes: {text}"))
    iops = np.stack([_orientation(d) for d in headers])
    if np.abs(iops - iops[0]).max() > ORIENTATION_TOL:
        problems.append(SeriesProblem(f"mixed slice orientations ({len(np.unique(iops.round(4), axis=0))} different)"))
    spacings = np.stack([_floats(d, "PixelSpacing", 2) for d in headers])
    if np.abs(spacings - spacings[0]).max() > 1e-4:
        problems.append(SeriesProblem("mixed pixel spacings"))
    if problems:
        return

    row = iops[0, :3] / np.linalg.norm(iops[0, :3])
    col = iops[0, 3:] - np.dot(iops[0, 3:], row) * row
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    ipps = np.stack([_floats(d, "ImagePositionPatient", 3) for d in headers])
    dist = ipps @ normal
    order = np.argsort(dist, kind="stable")
    series.files = [files[i] for i in order]
    series.headers = [headers[i] for i in order]
    ipps, dist = ipps[order], dist[order]
    n = len(order)
    rows, cols = sizes.most_common(1)[0][0]
    dy, dx = (float(v) for v in spacings[0])

    rel = ipps - ipps[0]
    offsets = rel - np.outer(rel @ normal, normal)
    steps = np.diff(dist)
    tilt = 0.0
    if n == 1:
        dz = _float_or_none(headers[0], "SpacingBetweenSlices") or _float_or_none(headers[0], "SliceThickness") or 1.0
        series.notes.append(f"single slice: slice spacing {dz:g} mm taken from the header")
    else:
        dup = int(np.sum(steps < POSITION_TOL_MM))
        if dup:
            problems.append(SeriesProblem(
                f"{dup + 1} slices share a position (two acquisitions, phases or echoes in one series?)"))
        ref = float(steps[steps >= POSITION_TOL_MM].min()) if np.any(steps >= POSITION_TOL_MM) else 0.0
        tol = SPACING_REL_TOL * ref + POSITION_TOL_MM
        dz = float((dist[-1] - dist[0]) / (n - 1))
        if not dup and np.abs(steps - ref).max() > tol:
            ratio = steps / ref
            m = np.rint(ratio)
            gap_idx = np.where((m >= 2) & (np.abs(steps - m * ref) <= tol))[0]
            odd = np.where((np.abs(steps - m * ref) > tol) | (m < 1))[0]
            if len(gap_idx):
                n_missing = int(np.sum(m[gap_idx] - 1))
                k = int(gap_idx[0])
                problems.append(SeriesProblem(
                    f"missing slices: about {n_missing} missing; largest gap "
                    f"{steps[gap_idx].max():.2f} mm where {ref:.2f} mm is expected "
                    f"(first after slice {k + 1} of {n})", forcible=True))
            if len(odd) or not len(gap_idx):
                problems.append(SeriesProblem(
                    f"uneven slice spacing: steps {steps.min():.3f} to {steps.max():.3f} mm "
                    f"(median {np.median(steps):.3f})", forcible=True))
            dz = float(np.median(steps))
        inplane = np.linalg.norm(offsets, axis=1)
        if inplane.max() > POSITION_TOL_MM and not dup:
            span = abs(dist[-1] - dist[0])
            tilt = math.degrees(math.atan2(float(inplane[-1]), span)) if span > 0 else 90.0
            problems.append(SeriesProblem(
                f"gantry tilt of {tilt:.2f} deg (slices shifted in-plane up to {inplane.max():.2f} mm)", forcible=True))
        header_tilt = _float_or_none(headers[0], "GantryDetectorTilt")
        if header_tilt and not tilt:
            series.notes.append(f"GantryDetectorTilt {header_tilt:g} deg in the header, but the slice positions "
                                "are orthogonal: positions used")
    if dz <= 0:
        dz = 1.0
    series.geometry = Geometry(shape=(int(cols), int(rows), n), spacing=(dx, dy, float(dz)), origin=ipps[0].copy(),
                               direction=np.column_stack([row, col, normal]), steps=steps, offsets=offsets,
                               tilt_deg=tilt)


def _float_or_none(ds: Dataset, keyword: str) -> float | None:
    v = _floats(ds, keyword, 1)
    return None if v is None else float(v[0])


# --------------------------------------------------------------------------------------------------
# pixel data -> HU


class _DecodeError(Exception):
    pass


def _decode_slice(path: Path, root: Path | None) -> tuple[np.ndarray, float, float, bool]:
    """(values, slope, intercept, already_hu) for one file; values are stored values unless ``already_hu``."""
    ds = pydicom.dcmread(path, force=True)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise _DecodeError(f"{_rel(path, root)}: no pixel data")
    slope = _float_or_none(ds, "RescaleSlope")
    intercept = _float_or_none(ds, "RescaleIntercept")
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(ds.pixel_array), slope, intercept, False
    except Exception as err:  # noqa: BLE001 - no decoder, corrupt stream ...
        pydicom_error = _one_line(err)
    try:  # GDCM (inside SimpleITK) decodes JPEG, JPEG-LS, JPEG 2000 and RLE; it applies the rescale itself
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.SetImageIO("GDCMImageIO")
        arr = sitk.GetArrayFromImage(reader.Execute())
        return (arr[0] if arr.ndim == 3 else arr), slope, intercept, True
    except Exception:  # noqa: BLE001
        pass
    meta = getattr(ds, "file_meta", None)
    try:
        compressed = pydicom.uid.UID(_str(meta, "TransferSyntaxUID")).is_compressed if meta is not None else False
    except Exception:  # noqa: BLE001
        compressed = False
    hint = ("install pylibjpeg with pylibjpeg-openjpeg (JPEG 2000) or pylibjpeg-libjpeg (JPEG)" if compressed
            else "the file is probably truncated or corrupt")
    raise _DecodeError(f"cannot decode the pixel data of {_rel(path, root)} (transfer syntax "
                       f"{_transfer_syntax(ds)}): {pydicom_error}; {hint}")


def _to_hu(values: np.ndarray, slope: float, intercept: float, already_hu: bool) -> np.ndarray:
    """HU in int32 (exact integer rescale) or float64: never in the stored dtype, which could wrap."""
    if already_hu:
        return values.astype(np.int32) if np.issubdtype(values.dtype, np.integer) else values.astype(np.float64)
    if np.issubdtype(values.dtype, np.integer) and float(slope).is_integer() and float(intercept).is_integer():
        return values.astype(np.int64).astype(np.int32) * int(slope) + int(intercept)
    return values.astype(np.float64) * slope + intercept


def _load_volume(series: DicomSeries, force: bool) -> np.ndarray:
    geo = series.geometry
    assert geo is not None
    nx, ny, _ = geo.shape
    slices = []
    for path in series.files:
        try:
            values, slope, intercept, already = _decode_slice(path, series.root)
        except _DecodeError as err:
            raise CTBenchError(str(err)) from None
        if values.shape != (ny, nx):
            raise CTBenchError(f"{_rel(path, series.root)}: pixel data is {values.shape[1]}x{values.shape[0]}, "
                               f"the header says {nx}x{ny}")
        slices.append(_to_hu(values, slope, intercept, already))
    if all(np.issubdtype(s.dtype, np.integer) for s in slices):
        vol = np.stack(slices).astype(np.int32)
        lo, hi = int(vol.min()), int(vol.max())
        if np.iinfo(np.int16).min <= lo and hi <= np.iinfo(np.int16).max:
            vol = vol.astype(np.int16)
        else:
            vol = vol.astype(np.float32)
    else:
        vol = np.stack([s.astype(np.float64) for s in slices]).astype(np.float32)
    if force and geo.tilt_deg:
        vol = _untilt(vol, geo)
    return vol


def _untilt(vol: np.ndarray, geo: Geometry) -> np.ndarray:
    """Shift each slice in-plane so that the tilted stack lies on the orthogonal grid of slice 0."""
    from scipy import ndimage

    row, col = geo.direction[:, 0], geo.direction[:, 1]
    dx, dy, _ = geo.spacing
    out = np.empty(vol.shape, dtype=np.float32)
    fill = float(vol.min())
    for k in range(vol.shape[0]):
        shift = (float(geo.offsets[k] @ col) / dy, float(geo.offsets[k] @ row) / dx)
        out[k] = ndimage.shift(vol[k].astype(np.float32), shift, order=1, mode="constant", cval=fill)
    return out


# --------------------------------------------------------------------------------------------------
# volumes


def _regular_geometry(series: DicomSeries) -> Geometry:
    """The grid actually written: slice k at origin + k * dz * normal (problems forced or absent)."""
    assert series.geometry is not None
    return series.geometry


def series_to_sitk(series: DicomSeries, force: bool = False) -> sitk.Image:
    """HU volume with LPS geometry, as SimpleITK/ITK expect (see the module docstring)."""
    vol = series.load_hu(force=force)
    geo = _regular_geometry(series)
    image = sitk.GetImageFromArray(vol)
    image.SetSpacing(tuple(float(s) for s in geo.spacing))
    image.SetOrigin(tuple(float(v) for v in geo.origin))
    image.SetDirection(tuple(float(v) for v in geo.direction.ravel()))
    return image


def series_to_nifti(series: DicomSeries, force: bool = False, volume: np.ndarray | None = None):
    """HU volume as a ``nibabel.Nifti1Image`` with a RAS affine (see the module docstring)."""
    import nibabel as nib

    vol = series.load_hu(force=force) if volume is None else volume
    affine = _regular_geometry(series).affine_ras()
    data = np.ascontiguousarray(vol.transpose(2, 1, 0))  # [slice,row,col] -> [col,row,slice] = (i,j,k)
    img = nib.Nifti1Image(data, affine)
    hdr = img.header
    hdr.set_data_dtype(data.dtype)
    hdr.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    hdr["descrip"] = b"ctbench convert: CT in HU"
    hdr["intent_name"] = b""
    hdr["aux_file"] = b""
    hdr["db_name"] = b""
    return img


def read_dicom_ct(folder: str | os.PathLike, series_number: int | None = None, force: bool = False) -> sitk.Image:
    """The single CT volume under ``folder`` as a SimpleITK image in HU (LPS geometry).

    With several CT series, ``series_number`` picks one; otherwise the error lists them.
    """
    scan = scan_dicom_tree(folder)
    cts = [s for s in scan.series if s.is_ct_volume]
    if series_number is not None:
        cts = [s for s in cts if s.series_number == series_number]
    if not cts:
        found = ", ".join(s.label for s in scan.series) or "no DICOM series"
        raise CTBenchError(f"no CT series{'' if series_number is None else f' number {series_number}'} "
                           f"under {folder} (found: {found})")
    if len(cts) > 1:
        raise CTBenchError(f"{len(cts)} CT series under {folder}: {', '.join(s.label for s in cts)}; "
                           "pick one by its series number, or run `ctbench convert` and use one NIfTI")
    return series_to_sitk(cts[0], force=force)


# --------------------------------------------------------------------------------------------------
# sidecar and conversion

#: (sidecar key, DICOM keyword, kind) of the acquisition facts written to the sidecar (an allow-list)
SIDECAR_FIELDS = (
    ("modality", "Modality", "str"),
    ("series_number", "SeriesNumber", "int"),
    ("series_description", "SeriesDescription", "str"),
    ("protocol_name", "ProtocolName", "str"),
    ("body_part_examined", "BodyPartExamined", "str"),
    ("image_type", "ImageType", "list"),
    ("manufacturer", "Manufacturer", "str"),
    ("manufacturer_model_name", "ManufacturerModelName", "str"),
    ("software_versions", "SoftwareVersions", "list"),
    ("convolution_kernel", "ConvolutionKernel", "list"),
    ("kvp", "KVP", "float"),
    ("xray_tube_current_ma", "XRayTubeCurrent", "float"),
    ("exposure_time_ms", "ExposureTime", "float"),
    ("exposure_mas", "Exposure", "float"),
    ("ctdi_vol_mgy", "CTDIvol", "float"),
    ("spiral_pitch_factor", "SpiralPitchFactor", "float"),
    ("slice_thickness_mm", "SliceThickness", "float"),
    ("reconstruction_diameter_mm", "ReconstructionDiameter", "float"),
    ("contrast_bolus_agent", "ContrastBolusAgent", "str"),
    ("patient_position", "PatientPosition", "str"),
    ("photometric_interpretation", "PhotometricInterpretation", "str"),
    ("bits_stored", "BitsStored", "int"),
)


def _tag_value(ds: Dataset, keyword: str, kind: str) -> Any:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001
        return None
    if value is None or value == "":
        return None
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "list":
            if isinstance(value, str):
                return [v for v in value.split("\\") if v]
            return [str(v) for v in value]
        return str(value).strip() or None
    except (TypeError, ValueError):
        return None


def build_sidecar(series: DicomSeries, volume: np.ndarray, forced: bool, keep_uids: bool = False) -> dict[str, Any]:
    """Acquisition facts of ``series`` and the written grid; no patient identifiers (see module doc)."""
    import ctbench

    geo = _regular_geometry(series)
    first = series.headers[0]
    out: dict[str, Any] = {"converter": f"ctbench {ctbench.__version__} convert"}
    for key, keyword, kind in SIDECAR_FIELDS:
        value = _tag_value(first, keyword, kind)
        if value is not None:
            out[key] = value
    slopes = sorted({_float_or_none(d, "RescaleSlope") or 1.0 for d in series.headers})
    intercepts = sorted({_float_or_none(d, "RescaleIntercept") or 0.0 for d in series.headers})
    import nibabel as nib

    affine_ras = geo.affine_ras()
    out.update({
        "units": "HU",
        "n_slices": series.n_slices,
        "shape": list(geo.shape),
        "spacing_mm": [round(float(s), 6) for s in geo.spacing],
        "slice_spacing_mm": round(float(geo.spacing[2]), 6),
        "slice_steps_mm": sorted({round(float(s), 4) for s in geo.steps}) if len(geo.steps) else [],
        "origin_lps_mm": [round(float(v), 6) for v in geo.origin],
        "direction_lps": [[round(float(v), 8) for v in row] for row in geo.direction],
        "affine_ras": [[round(float(v), 6) for v in row] for row in affine_ras],
        "orientation_nifti": "".join(nib.aff2axcodes(affine_ras)),
        "gantry_tilt_deg": round(float(geo.tilt_deg), 4),
        "dtype": str(volume.dtype),
        "hu_min": float(volume.min()),
        "hu_max": float(volume.max()),
        "rescale_slope": slopes if len(slopes) > 1 else slopes[0],
        "rescale_intercept": intercepts if len(intercepts) > 1 else intercepts[0],
        "transfer_syntax": _transfer_syntax(first),
        "forced": forced,
        "problems": [p.message for p in series.problems],
        "notes": list(series.notes),
    })
    if keep_uids:
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
            out[keyword] = _str(first, keyword)
        return out
    return _scrub(out, identifier_strings(series.headers))


def output_stem(series: DicomSeries, index: int) -> str:
    """``NNN_S<number>_<description>``: a counter, the SeriesNumber and the scrubbed description."""
    number = "x" if series.series_number is None else str(series.series_number)
    desc = _slug(series.description)
    if desc and scrub_text(series.description, identifier_strings(series.headers)) == REMOVED:
        desc = ""
    return f"{index:03d}_S{number}_{desc or series.modality}"


def _write_nifti(path: Path, img) -> None:
    from ctbench.atomic import atomic_write

    raw = img.to_bytes()
    atomic_write(path, lambda fh: fh.write(gzip.compress(raw, compresslevel=6, mtime=0)))


def convert_tree(dicom_dir: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False,
                 keep_uids: bool = False, console: Any = None, progress: bool = True) -> ConvertResult:
    """Convert every CT series under ``dicom_dir`` into ``out_dir``; see :func:`run_cli` for the messages.

    Raises :class:`CTBenchError` for an empty folder, a folder without DICOM files or without CT series.
    """
    from ctbench.atomic import atomic_write_json

    root, out = Path(dicom_dir), Path(out_dir)
    scan = scan_dicom_tree(root, progress=progress, exclude=out if out.exists() else None, console=console)
    if scan.n_files == 0:
        raise CTBenchError(f"{root}: empty folder, no files to convert")
    if not scan.series:
        example = "; ".join(f"{_rel(p, root)}: {why}" for p, why in scan.bad_files[:3])
        raise CTBenchError(f"no DICOM files under {root}: {scan.n_files} file(s) checked ({example})")
    if not any(s.is_ct_volume for s in scan.series):
        found = Counter(s.skip_reason or s.modality for s in scan.series)
        text = ", ".join(f"{why} x{n}" if n > 1 else why for why, n in found.items())
        raise CTBenchError(f"no CT image series under {root}, nothing to convert (found: {text})")

    outcomes: list[SeriesOutcome] = []
    index = 0
    todo = [s for s in scan.series if s.is_ct_volume and s.can_convert(force)]
    bar = None
    if progress and sum(s.n_slices for s in todo) >= PROGRESS_MIN_FILES:
        from rich.progress import Progress

        bar = Progress(console=console, transient=True)
        bar.start()
        task = bar.add_task("converting CT series", total=len(todo))
    try:
        for series in scan.series:
            if not series.is_ct_volume:
                outcomes.append(SeriesOutcome(series, "skipped", series.skip_reason or ""))
                continue
            index += 1
            if not series.can_convert(force):
                blocking = [p for p in series.problems if not (force and p.forcible)]
                hint = " (--force writes it anyway)" if all(p.forcible for p in blocking) and not force else ""
                outcomes.append(SeriesOutcome(series, "problems",
                                              "; ".join(p.message for p in blocking) + hint))
                continue
            stem = output_stem(series, index)
            try:
                volume = series.load_hu(force=force)
                img = series_to_nifti(series, force=force, volume=volume)
                nii_path, json_path = out / f"{stem}.nii.gz", out / f"{stem}.json"
                _write_nifti(nii_path, img)
                forced = bool(series.problems)
                atomic_write_json(json_path, build_sidecar(series, volume, forced=forced, keep_uids=keep_uids))
            except CTBenchError as err:
                outcomes.append(SeriesOutcome(series, "failed", str(err)))
            else:
                status = "forced" if forced else "written"
                msg = nii_path.name + ("; forced despite: " + "; ".join(p.message for p in series.problems)
                                       if forced else "")
                outcomes.append(SeriesOutcome(series, status, msg, nifti=nii_path, sidecar=json_path))
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return ConvertResult(scan=scan, outcomes=outcomes)


def print_summary(result: ConvertResult, console: Any) -> None:
    """The rich summary table of a conversion, then one line per file that is not usable DICOM."""
    from rich.table import Table

    table = Table(title=f"ctbench convert: {len(result.written)} of "
                        f"{sum(o.series.is_ct_volume for o in result.outcomes)} CT series written",
                  show_lines=False)
    for col in ("series", "modality", "files", "size", "spacing mm", "result"):
        table.add_column(col, overflow="fold")
    styles = {"written": "green", "forced": "yellow", "problems": "red", "failed": "red", "skipped": "dim"}
    for o in result.outcomes:
        s = o.series
        number = "?" if s.series_number is None else str(s.series_number)
        desc = scrub_text(s.description, identifier_strings(s.headers)) if s.description else ""
        geo = s.geometry
        size = "x".join(map(str, geo.shape)) if geo else "-"
        spacing = "x".join(f"{v:.3g}" for v in geo.spacing) if geo else "-"
        table.add_row(f"S{number} {desc}".strip(), s.modality, str(s.n_slices), size, spacing,
                      f"[{styles[o.status]}]{o.status}[/]: {o.message}")
    console.print(table)
    # one line per file that looks like DICOM (a DICOM ending, no ending, corrupt, empty); a count for the rest
    looks_dicom = [(p, why) for p, why in result.scan.bad_files
                   if why != "not a DICOM file" or p.suffix.lower() in DICOM_SUFFIXES or not p.suffix]
    others = Counter(("".join(p.suffixes[-2:]) if p.suffix else p.name).lower()
                     for p, why in result.scan.bad_files if (p, why) not in looks_dicom)
    for path, why in looks_dicom[:20]:
        console.print(f"not DICOM: {_rel(path, result.scan.root)}: {why}", markup=False, highlight=False)
    if len(looks_dicom) > 20:
        console.print(f"... and {len(looks_dicom) - 20} more files that are not DICOM")
    if others:
        text = ", ".join(f"{ext} x{n}" for ext, n in others.most_common(8))
        console.print(f"ignored {sum(others.values())} other non-DICOM file(s): {text}", markup=False, highlight=False)


def run_cli(args: Any) -> int:
    """``ctbench convert DICOM_DIR OUT_DIR [--force]``: 0 when at least one series was written."""
    from rich.console import Console

    console = Console(highlight=False)
    result = convert_tree(args.dicom_dir, args.out_dir, force=bool(getattr(args, "force", False)),
                          keep_uids=bool(getattr(args, "keep_uids", False)), console=console)
    print_summary(result, console)
    if not result.written:
        reasons = [f"{o.series.label}: {o.message}" for o in result.outcomes if o.status in ("problems", "failed")]
        print(f"ctbench: error: nothing converted: {reasons[0] if reasons else 'no CT series'}"
              + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""), file=sys.stderr)
        return 1
    return 0
