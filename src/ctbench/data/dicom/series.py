"""Walking a DICOM tree: headers read (pixels not), files grouped into series, each series diagnosed.

Grouping key: SeriesInstanceUID; an empty or missing UID (de-identified exports) falls back to
StudyInstanceUID + SeriesNumber + FrameOfReferenceUID + modality + image size + description +
orientation, so such a series still groups stably. Localiser images inside a CT series are dropped with
a note; a series of localisers only is skipped, as is anything that is not single-frame CT Image Storage.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ctbench.data.dicom.geometry import check_and_sort
from ctbench.data.dicom.headers import (
    CT_IMAGE_STORAGE,
    DICOMDIR_SOP_CLASS,
    MULTIFRAME_CT,
    SECONDARY_CAPTURE_PREFIX,
    image_type,
    one_line,
    orientation,
    sop_class,
    tag_int,
    tag_str,
    transfer_syntax,
)
from ctbench.data.dicom.types import DicomSeries
from ctbench.errors import CTBenchError

#: file endings that promise DICOM (a non-DICOM file with one of them is reported by name)
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima", ".img"}
#: show a progress bar from this many files on
PROGRESS_MIN_FILES = 100
#: (group, element) of PixelData, FloatPixelData, DoubleFloatPixelData
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_NON_CT_KINDS = {"SR": "structured report", "RTSTRUCT": "RT structure set", "SEG": "segmentation",
                 "OT": "other/secondary capture", "PR": "presentation state", "KO": "key object selection",
                 "REG": "registration", "RTDOSE": "RT dose", "RTPLAN": "RT plan", "DOC": "document"}


@dataclass
class DicomScan:
    """Result of walking a tree: the series found and the files that are not (usable) DICOM."""

    root: Path
    series: list[DicomSeries]
    bad_files: list[tuple[Path, str]]
    n_files: int
    ignored: list[tuple[Path, str]] = field(default_factory=list)


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


def read_header(path: Path) -> tuple[Dataset | None, str, bool]:
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
    with warnings.catch_warnings():  # pydicom warns about odd but readable files: not the user's business here
        warnings.simplefilter("ignore")
        return _read_header_quiet(path)


def _read_header_quiet(path: Path) -> tuple[Dataset | None, str, bool]:
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
            if not (sop_class(ds) or tag_str(ds, "Modality")):
                return None, "not a DICOM file", False
        if len(tag) == 4:
            little = (int.from_bytes(tag[:2], "little"), int.from_bytes(tag[2:], "little"))
            big = (int.from_bytes(tag[:2], "big"), int.from_bytes(tag[2:], "big"))
            has_pixels = little in _PIXEL_TAGS or big in _PIXEL_TAGS
        if "Deflate" in transfer_syntax(ds):  # the stream position is not the file's: decide when loading
            has_pixels = True
    except Exception as err:  # noqa: BLE001 - truncated or corrupt
        return None, ("not a DICOM file" if forced else f"corrupt DICOM file ({one_line(err)})"), False
    try:  # force parsing now, so that a corrupt element fails here and not later
        _ = [elem.keyword for elem in ds]
    except Exception as err:  # noqa: BLE001
        return None, f"corrupt DICOM header ({one_line(err)})", False
    return ds, "", has_pixels


def _group_key(ds: Dataset) -> str:
    uid = tag_str(ds, "SeriesInstanceUID")
    if uid:
        return f"uid:{uid}"
    iop = orientation(ds)
    iop_key = "none" if iop is None else ",".join(f"{v:.3f}" for v in iop)
    parts = [tag_str(ds, k) for k in ("StudyInstanceUID", "SeriesNumber", "FrameOfReferenceUID", "Modality",
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
        ds, reason, has_pixels = read_header(path)
        if ds is None:
            bad.append((path, reason))
        elif sop_class(ds) == DICOMDIR_SOP_CLASS:
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
    """Every series under ``folder`` (headers only, sorted, diagnosed). See the package docstring."""
    return scan_dicom_tree(folder, progress=progress).series


def _skip_reason(modality: str, sop: str, first: Dataset) -> str | None:
    """Why a series is not a single-frame CT image series, or ``None``."""
    if modality != "CT":
        what = _NON_CT_KINDS.get(modality, "")
        return f"{modality} series{' (' + what + ')' if what else ''}: not CT"
    if sop.startswith(SECONDARY_CAPTURE_PREFIX):
        return "secondary capture (screenshot or dose page), not an image volume"
    if sop in MULTIFRAME_CT or (tag_int(first, "NumberOfFrames") or 1) > 1:
        return f"multi-frame {MULTIFRAME_CT.get(sop, 'CT')} is not supported; export single-frame CT"
    if sop and sop != CT_IMAGE_STORAGE:
        return f"SOP class {sop} is not CT Image Storage"
    return None


def _diagnose(key: str, members: list[tuple[Path, Dataset]], root: Path | None,
              no_pixels: set[Path] = frozenset()) -> DicomSeries:
    first = members[0][1]
    modality = tag_str(first, "Modality").upper() or "?"
    series = DicomSeries(key=key, modality=modality, series_number=tag_int(first, "SeriesNumber"),
                         description=tag_str(first, "SeriesDescription"),
                         files=[p for p, _ in members], headers=[d for _, d in members], root=root)
    series.skip_reason = _skip_reason(modality, sop_class(first), first)
    if series.skip_reason:
        return series
    # drop localisers (scouts) inside an otherwise axial series
    scouts = {i for i, d in enumerate(series.headers) if "LOCALIZER" in image_type(d)}
    if len(scouts) == len(series.headers):
        series.skip_reason = "localizer/scout images, not a volume"
        return series
    if scouts:
        keep = [i for i in range(len(series.headers)) if i not in scouts]
        series.files = [series.files[i] for i in keep]
        series.headers = [series.headers[i] for i in keep]
        series.notes.append(f"{len(scouts)} localizer image(s) in the series ignored")
    if any(int(tag_int(d, "SamplesPerPixel") or 1) != 1 for d in series.headers):
        series.skip_reason = "colour (RGB) images, not CT intensities"
        return series
    check_and_sort(series, no_pixels)
    return series
