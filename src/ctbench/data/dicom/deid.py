"""De-identification: identifier strings of a series, scrubbed text, file names, case ids and the sidecar.

The sidecar is built from an allow-list of acquisition facts (no names, IDs, dates, institutions,
stations, device serials or UIDs; DICOM PS3.15 Annex E lists what counts as identifying). Any text that
still contains one of the series' identifier values as a word (person-name parts at any length, other
values whole) is replaced by ``[removed]``; the same check guards file names and case ids. Paths are
not written. ``keep_uids`` adds the Study/Series/FrameOfReference UIDs after scrubbing, nothing else.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset

from ctbench.data.dicom.decode import FILL_HU, plan_grid
from ctbench.data.dicom.headers import tag_float, tag_str, transfer_syntax

if TYPE_CHECKING:
    from ctbench.data.dicom.series import DicomSeries

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
#: keywords whose value is a person name: the value and every part (family, given, middle name) are
#: identifiers at any length; other values count whole from 3 characters (a StudyID "1" would remove
#: every text with the word 1), their parts (address, institution words) from 4
PERSON_NAME_KEYWORDS = {"PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
                        "ReferringPhysicianName", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
                        "PhysiciansOfRecord", "OperatorsName", "RequestingPhysician"}
REMOVED = "[removed]"
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")

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


def identifier_strings(headers: Iterable[Dataset]) -> set[str]:
    """Identifier values found in ``headers`` (whole values and their word parts), upper case."""
    found: set[str] = set()
    for ds in headers:
        for keyword in IDENTIFIER_KEYWORDS:
            value = tag_str(ds, keyword)
            if not value:
                continue
            is_name = keyword in PERSON_NAME_KEYWORDS
            if is_name or len(value) >= 3:
                found.add(value.upper())
            shortest = 1 if is_name else 4
            found.update(part.upper() for part in re.split(r"[\^\s,=\\]+", value) if len(part) >= shortest)
    return found


def scrub_text(text: str, identifiers: set[str]) -> str:
    """``text`` unless it contains one of ``identifiers`` as a word (case-insensitive), else ``[removed]``.

    A word boundary is any character other than a letter or digit (``_``, ``^``, space, punctuation).
    """
    upper = text.upper()
    for ident in identifiers:
        if ident in upper and re.search(rf"(?<![A-Z0-9]){re.escape(ident)}(?![A-Z0-9])", upper):
            return REMOVED
    return text


def scrub(value: Any, identifiers: set[str]) -> Any:
    """``value`` (text, list or dict, recursively) with every text that holds an identifier removed."""
    if isinstance(value, str):
        return scrub_text(value, identifiers)
    if isinstance(value, list):
        return [scrub(v, identifiers) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v, identifiers) for k, v in value.items()}
    return value


def slug(text: str, limit: int = 40) -> str:
    """``text`` as a file-name part: runs of other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:limit].rstrip("_")


def output_stem(series: DicomSeries, index: int) -> str:
    """``NNN_S<number>_<description>``: a counter, the SeriesNumber and the scrubbed description."""
    number = "x" if series.series_number is None else str(series.series_number)
    desc = slug(series.description)
    if desc and scrub_text(series.description, identifier_strings(series.headers)) == REMOVED:
        desc = ""
    return f"{index:03d}_S{number}_{desc or series.modality}"


def pseudonym(name: str) -> str:
    """``dicom_<12 hex>``: a stable stand-in for a folder name that holds an identifier (SHA-256 of the name).

    A pseudonym, not anonymisation: whoever can guess the name can compute the same value.
    """
    return "dicom_" + hashlib.sha256(name.encode()).hexdigest()[:12]


def folder_case_id(name: str, series: DicomSeries) -> str:
    """A case id for a series folder: its name, or :func:`pseudonym` when the name holds an identifier."""
    return pseudonym(name) if scrub_text(name, identifier_strings(series.headers)) == REMOVED else name


def pseudonym_labels(labels: dict[str, Path], link_dir: Path) -> dict[str, Path]:
    """``{pseudonym(case): link}`` for every label: a symbolic link in ``link_dir`` named after the pseudonym.

    A label named after a series folder whose name holds an identifier then pairs with that folder's case,
    and every path ctbench records (caches, reports) names the pseudonym, not the identifier.
    """
    link_dir.mkdir(parents=True, exist_ok=True)
    links = {}
    for case, path in labels.items():
        link = link_dir / f"{pseudonym(case)}.nii.gz"
        if not link.is_symlink() or os.readlink(link) != str(path):
            link.unlink(missing_ok=True)
            link.symlink_to(path)
        links[pseudonym(case)] = link
    return links


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


def _grid_facts(series: DicomSeries) -> dict[str, Any]:
    """The written grid, and how an uneven series was placed on it (filled and interpolated slices)."""
    import nibabel as nib

    geo = series.geometry
    assert geo is not None
    affine_ras = geo.affine_ras()
    facts: dict[str, Any] = {
        "n_slices": series.n_slices,
        "shape": list(geo.shape),
        "spacing_mm": [round(float(s), 6) for s in geo.spacing],
        "slice_spacing_mm": round(float(geo.spacing[2]), 6),
        "slice_steps_mm": sorted({round(float(s), 4) for s in geo.steps}),
        "origin_lps_mm": [round(float(v), 6) for v in geo.origin],
        "direction_lps": [[round(float(v), 8) for v in row] for row in geo.direction],
        "affine_ras": [[round(float(v), 6) for v in row] for row in affine_ras],
        "orientation_nifti": "".join(nib.aff2axcodes(affine_ras)),
        "gantry_tilt_deg": round(float(geo.tilt_deg), 4),
    }
    if not geo.even and series.n_slices > 1:
        plan = plan_grid(geo)
        facts.update({"filled_slices": plan.filled, "filled_hu": FILL_HU, "interpolated_slices": plan.interpolated})
    return facts


def build_sidecar(series: DicomSeries, volume: np.ndarray, forced: bool, keep_uids: bool = False) -> dict[str, Any]:
    """Acquisition facts of ``series`` and the written grid; no patient identifiers (see the module doc).

    ``filled_slices`` / ``interpolated_slices`` (grid indices k, from 0 along +normal) appear when the
    slice steps were uneven and the series was forced.
    """
    import ctbench

    first = series.headers[0]
    out: dict[str, Any] = {"converter": f"ctbench {ctbench.__version__} convert"}
    for key, keyword, kind in SIDECAR_FIELDS:
        value = _tag_value(first, keyword, kind)
        if value is not None:
            out[key] = value
    slopes = sorted({tag_float(d, "RescaleSlope") or 1.0 for d in series.headers})
    intercepts = sorted({tag_float(d, "RescaleIntercept") or 0.0 for d in series.headers})
    out["units"] = "HU"
    out.update(_grid_facts(series))
    out.update({
        "dtype": str(volume.dtype),
        "hu_min": float(volume.min()),
        "hu_max": float(volume.max()),
        "rescale_slope": slopes if len(slopes) > 1 else slopes[0],
        "rescale_intercept": intercepts if len(intercepts) > 1 else intercepts[0],
        "transfer_syntax": transfer_syntax(first),
        "forced": forced,
        "problems": [p.message for p in series.problems],
        "notes": list(series.notes),
    })
    out = scrub(out, identifier_strings(series.headers))
    if keep_uids:
        out.update({keyword: tag_str(first, keyword) for keyword in UID_KEYWORDS})
    return out
