"""DICOM SEG output: written with highdicom from the real TotalSegmentator DICOM series, read back with
pydicom and highdicom; frames on the source slices, the mask equal to the NIfTI prediction."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from ctbench.data.dicom import read_dicom_series
from ctbench.data.dicom.seg import dicom_seg, write_dicom_seg
from ctbench.errors import CTBenchError

from cli_helpers import ctbench

TS_DICOM = Path(__file__).parent / "real" / "totalseg-ct-dicom" / "dicom"
STUDY = {"PatientName": "TEST^PAT", "PatientID": "PID-777", "AccessionNumber": "ACC-42", "StudyID": "ST9"}


@pytest.fixture(scope="module")
def pacs_series(tmp_path_factory) -> Path:
    """The real series with the study/series/instance UIDs and patient module a PACS export carries
    (the stored copy was de-identified: its SOP, study and series UIDs are empty)."""
    folder = tmp_path_factory.mktemp("pacs") / "series"
    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    for path in sorted(TS_DICOM.iterdir()):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
        for keyword, value in STUDY.items():
            setattr(ds, keyword, value)
        ds.save_as(folder / path.name)
    return folder


def _check_frames_on_source(seg: pydicom.Dataset, folder: Path) -> dict[str, int]:
    """Every frame references a source slice, lies on its plane and shares its frame of reference;
    returns ``{SOPInstanceUID: slice index along the normal}`` of the source."""
    sources = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in folder.iterdir())}
    order = sorted(sources, key=lambda uid: float(sources[uid].ImagePositionPatient[2]))
    assert seg.FrameOfReferenceUID == sources[order[0]].FrameOfReferenceUID
    for frame in seg.PerFrameFunctionalGroupsSequence:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, [float(v) for v in sources[uid].ImagePositionPatient], atol=1e-3)
    return {uid: k for k, uid in enumerate(order)}


def _decoded(seg_path: Path, slice_of: dict[str, int], shape: tuple[int, int, int]) -> np.ndarray:
    """The SEG as a label map in NIfTI order ``[column, row, slice]``, decoded by highdicom."""
    seg = hd.seg.segread(seg_path)
    uids = sorted(slice_of, key=slice_of.get)
    frames = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True,
                                               skip_overlap_checks=True)
    assert frames.shape == (shape[2], shape[1], shape[0])
    return np.asarray(frames).transpose(2, 1, 0)


def test_seg_frames_land_on_source_slices_and_carry_the_study(pacs_series, tmp_path):
    (series,) = read_dicom_series(pacs_series)
    label = np.zeros(series.geometry.shape, np.uint8)
    label[100:200, 150:300, 3:9] = 1  # a liver box on slices 3..8
    label[300:350, 300:310, 10:12] = 2  # a lesion on slices 10..11
    path = tmp_path / "seg.dcm"
    write_dicom_seg(path, dicom_seg(label, series, ["background", "liver", "lesion"], "unet"))
    seg = pydicom.dcmread(path)
    assert seg.Modality == "SEG" and seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.NumberOfFrames == 6 + 2  # empty frames omitted: 6 liver slices, 2 lesion slices
    slice_of = _check_frames_on_source(seg, pacs_series)
    np.testing.assert_array_equal(_decoded(path, slice_of, label.shape), label)
    liver, lesion = seg.SegmentSequence
    assert (liver.SegmentLabel, liver.SegmentedPropertyTypeCodeSequence[0].CodeValue) == ("liver", "10200004")
    assert liver.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"  # anatomical structure
    assert lesion.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"  # abnormal structure
    assert liver.SegmentAlgorithmType == "AUTOMATIC" and liver.SegmentAlgorithmName == "unet"
    # the patient and study modules of the source, so that the PACS files the SEG with its CT
    src = pydicom.dcmread(next(pacs_series.iterdir()), stop_before_pixels=True)
    assert (seg.PatientName, seg.PatientID, seg.AccessionNumber, seg.StudyID) == tuple(STUDY.values())
    assert seg.StudyInstanceUID == src.StudyInstanceUID and seg.SeriesInstanceUID != src.SeriesInstanceUID


def test_seg_refused_without_study_and_series_uids():
    (series,) = read_dicom_series(TS_DICOM)  # the stored, de-identified copy: UIDs empty
    label = np.zeros(series.geometry.shape, np.uint8)
    with pytest.raises(CTBenchError, match="no StudyInstanceUID, SeriesInstanceUID.*output_format=nifti"):
        dicom_seg(label, series, ["background", "liver"], "unet")


def test_predict_writes_a_dicom_seg_equal_to_the_nifti(trained_run, pacs_series, tmp_path):
    ckpt = f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}"
    out = tmp_path / "masks"
    ctbench("predict", ckpt, f"input={pacs_series}", f"output_dir={out}", "output_format=dicom-seg",
            "progress_bar=false", cwd=tmp_path)
    (nifti,) = out.glob("*.nii.gz")
    seg_path = nifti.with_name(nifti.name.replace(".nii.gz", ".dcm"))
    label = np.asarray(nib.load(nifti).dataobj)
    seg = pydicom.dcmread(seg_path)
    slice_of = _check_frames_on_source(seg, pacs_series)
    np.testing.assert_array_equal(_decoded(seg_path, slice_of, label.shape), label)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "spleen", "kidney", "lesion"]


def test_dicom_seg_needs_a_dicom_input(trained_run, workdir, tmp_path):
    image = next((workdir / "data" / "synthetic_tiny" / "imagesTr").glob("*.nii.gz"))
    proc = ctbench("predict", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", f"input={image}",
                   f"output_dir={tmp_path / 'o'}", "output_format=dicom-seg", "progress_bar=false", cwd=tmp_path,
                   check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "dicom-seg with a DICOM folder" in lines[0], proc.stderr
    assert not list((tmp_path / "o").glob("*")) if (tmp_path / "o").exists() else True
    # the stored series has empty study/series UIDs: refused before anything is predicted or written
    proc = ctbench("predict", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", f"input={TS_DICOM}",
                   f"output_dir={tmp_path / 'o2'}", "output_format=dicom-seg", "progress_bar=false", cwd=tmp_path,
                   check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "a DICOM SEG cannot reference it" in lines[0], proc.stderr
    assert not (tmp_path / "o2").exists() or not list((tmp_path / "o2").iterdir())
