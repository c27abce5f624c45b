"""What a converted series is written as: identifier-free file names and case ids, and the JSON sidecar.

The sidecar is built from an allow-list of acquisition facts (:data:`SIDECAR_FIELDS`), then scrubbed of the
series' identifiers (:mod:`ctbench.data.dicom.deid`); ``keep_uids`` adds the Study/Series/FrameOfReference
UIDs after scrubbing, nothing else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from ctbench.data.dicom.decode import FILL_HU, plan_grid
from ctbench.data.dicom.deid import REMOVED, identifier_strings, pseudonym, scrub, scrub_text, slug
from ctbench.data.dicom.headers import tag_float, tag_str, transfer_syntax
from ctbench.data.dicom.types import DicomSeries

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


def output_stem(series: DicomSeries, index: int) -> str:
    """``NNN_S<number>_<description>``: a counter, the SeriesNumber and the scrubbed description."""
    number = "x" if series.series_number is None else str(series.series_number)
    desc = slug(series.description)
    if desc and scrub_text(series.description, identifier_strings(series.headers)) == REMOVED:
        desc = ""
    return f"{index:03d}_S{number}_{desc or series.modality}"


def folder_case_id(name: str, series: DicomSeries) -> str:
    """A case id for a series folder: its name, or :func:`pseudonym` when the name holds an identifier."""
    return pseudonym(name) if scrub_text(name, identifier_strings(series.headers)) == REMOVED else name


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
