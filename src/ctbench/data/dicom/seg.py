"""DICOM SEG (PS3.3 A.51, Segmentation IOD) of a label map predicted on a converted CT series, via highdicom.

One binary segment per foreground class, named after the class and coded in SNOMED CT where pydicom's
code dictionary knows the name (``liver`` -> SCT 10200004), else in the private scheme ``99CTBENCH``.
Each frame references its source CT instance and lies on its plane (position, orientation and the
series' FrameOfReferenceUID). highdicom copies the source study's patient and study modules into the
SEG, so a PACS files it with its CT: unlike every other ctbench output, a SEG carries identifiers.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydicom.dataset import Dataset

from ctbench.data.dicom.headers import sop_class, tag_str
from ctbench.errors import CTBenchError

if TYPE_CHECKING:
    from pydicom.sr.coding import Code

    from ctbench.data.dicom.types import DicomSeries

#: class names coded as abnormal structures (SNOMED CT "Morphologically Abnormal Structure")
ABNORMAL_NAMES = {"lesion", "lesions", "tumor", "tumour", "neoplasm", "cancer", "metastasis", "cyst", "nodule"}
PRIVATE_SCHEME = "99CTBENCH"


def segment_codes(name: str) -> tuple[Code, Code]:
    """(segmented property category, segmented property type) for a class name."""
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    key = "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
    abnormal = name.lower() in ABNORMAL_NAMES
    category = codes.SCT.MorphologicallyAbnormalStructure if abnormal else codes.SCT.AnatomicalStructure
    try:
        return category, getattr(codes.SCT, key)
    except AttributeError:
        return category, Code(value=name[:16], scheme_designator=PRIVATE_SCHEME, meaning=name[:64])


def seg_sources(series: DicomSeries) -> list[Dataset]:
    """The series' headers as a SEG's source images (refused with one line when a UID is missing), with SOP class/instance UIDs from the file meta where the dataset leaves them empty."""
    missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")
               if not tag_str(series.headers[0], k)]
    if missing:
        raise CTBenchError(f"series {series.label} has no {', '.join(missing)} (a de-identified export?): a DICOM SEG "
                           "cannot reference it; use output_format=nifti")
    sources = []
    for ds in series.headers:
        ds = copy.deepcopy(ds)
        meta = getattr(ds, "file_meta", None)
        if "SpecificCharacterSet" in ds and not tag_str(ds, "SpecificCharacterSet"):
            del ds.SpecificCharacterSet  # empty is legal and means the default repertoire, as absent does
        ds.SOPClassUID = sop_class(ds)
        ds.SOPInstanceUID = tag_str(ds, "SOPInstanceUID") or tag_str(meta, "MediaStorageSOPInstanceUID")
        if not ds.SOPInstanceUID:
            raise CTBenchError(f"series {series.label}: a slice has no SOPInstanceUID: a DICOM SEG cannot reference "
                               "it; use output_format=nifti")
        sources.append(ds)
    return sources


def dicom_seg(label: np.ndarray, series: DicomSeries, class_names: list[str], algorithm: str) -> Dataset:
    """The SEG of ``label`` (NIfTI voxel order ``[column, row, slice]`` on the series' grid, 0 = background).

    ``class_names[c]`` names label value ``c``; ``algorithm`` names the model (AlgorithmName).
    """
    import logging

    import highdicom as hd
    from pydicom.sr.codedict import codes

    import ctbench

    # highdicom logs every source instance's SOPInstanceUID at INFO: the run's log would hold the identifiers
    logging.getLogger("highdicom").setLevel(logging.WARNING)

    geo = series.geometry
    if geo is None or not geo.even or tuple(label.shape) != tuple(geo.shape):
        raise CTBenchError(f"series {series.label}: the label map {label.shape} is not on the series' own slices; "
                           "a DICOM SEG needs an evenly spaced series (drop force=true, or use output_format=nifti)")
    algorithm_id = hd.AlgorithmIdentificationSequence(name=algorithm[:64], family=codes.cid7162.ArtificialIntelligence,
                                                      version=ctbench.__version__)
    segments = []
    for number, name in enumerate(class_names[1:], start=1):
        category, kind = segment_codes(name)
        segments.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name[:64], segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm_id))
    frames = np.ascontiguousarray(label.transpose(2, 1, 0)).astype(np.uint8)  # [slice, row, column]
    return hd.seg.Segmentation(
        source_images=seg_sources(series), pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=segments,
        series_instance_uid=hd.UID(), series_number=(series.series_number or 0) + 1000, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="ctbench", manufacturer_model_name=algorithm[:64],
        software_versions=ctbench.__version__, device_serial_number="none", content_label="CTBENCH",
        content_description=f"ctbench predict: {algorithm}"[:64], omit_empty_frames=bool(frames.any()))


def write_dicom_seg(path: Path, seg: Dataset) -> None:
    """``seg`` written atomically as a DICOM Part 10 file."""
    from ctbench.atomic import atomic_write

    atomic_write(path, lambda fh: seg.save_as(fh, enforce_file_format=True))
