"""DICOM SEG on every real CT series in ``tests/data/real/`` (issue 25 item 2): a legal series gives a SEG that
highdicom reads back voxel for voxel; a series without the UIDs a SEG must reference keeps its one-line refusal."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from ctbench.data.dicom import read_dicom_series
from ctbench.data.dicom.seg import dicom_seg, write_dicom_seg
from ctbench.errors import CTBenchError

REAL = Path(__file__).parent / "real"
NAMES = ["background", "liver", "lesion"]
#: every CT volume series of the real data, and whether it carries Study/Series/FrameOfReference UIDs
SERIES = [("dcmqi-ct-3slice-liver/dicom", "S2", True),     # empty SpecificCharacterSet (legal: default repertoire)
          ("pydicom-ct-tiny", "S1", True), ("pydicom-ct-tiny", "S5", True),
          ("pydicom-ct-tiny", "S2", True),                 # missing slices: the SEG needs its own even slices
          ("totalseg-ct-dicom/dicom", "S?", False)]        # de-identified: empty UIDs


def the_series(folder: str, number: str):
    (series,) = [s for s in read_dicom_series(REAL / folder) if s.is_ct_volume and s.label.startswith(number + " ")]
    return series


def test_the_dcmqi_series_has_an_empty_character_set() -> None:
    ds = pydicom.dcmread(REAL / "dcmqi-ct-3slice-liver" / "dicom" / "01.dcm", stop_before_pixels=True)
    assert "SpecificCharacterSet" in ds and ds.SpecificCharacterSet == ""


@pytest.mark.parametrize(("folder", "number", "has_uids"), SERIES)
def test_seg_of_every_real_series(tmp_path: Path, folder: str, number: str, has_uids: bool) -> None:
    series = the_series(folder, number)
    label = np.zeros(series.geometry.shape, np.uint8)
    nx, ny, nz = label.shape
    label[nx // 4: nx // 2, ny // 4: ny // 2, :] = 1
    label[nx // 2: nx // 2 + 2, ny // 2: ny // 2 + 2, nz - 1] = 2
    if not has_uids:
        with pytest.raises(CTBenchError, match="has no StudyInstanceUID, SeriesInstanceUID.*use output_format=nifti"):
            dicom_seg(label, series, NAMES, "unet")
        return
    if series.problems:  # uneven or missing slices: the label map is not on the series' own slices
        with pytest.raises(CTBenchError, match="not on the series' own slices"):
            dicom_seg(label, series, NAMES, "unet")
        return
    path = tmp_path / "seg.dcm"
    write_dicom_seg(path, dicom_seg(label, series, NAMES, "unet"))
    seg = hd.seg.segread(path)
    sources = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in series.files}
    positions = {uid: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
                 for uid, f in sources.items()}
    order = sorted(positions, key=positions.get)  # NIfTI slice k = k-th position along +z (axial, ascending)
    frames = seg.get_pixels_by_source_instance(source_sop_instance_uids=order, combine_segments=True,
                                               skip_overlap_checks=True)
    np.testing.assert_array_equal(np.asarray(frames).transpose(2, 1, 0), label)
