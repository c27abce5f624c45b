"""No patient identifier in anything ctbench writes from identified DICOM, except the DICOM SEG (which goes
back to the PACS the CT came from and must carry the patient and study modules)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from ctbench.data.dicom import convert_tree, folder_case_id, read_dicom_series, series_to_nifti

from cli_helpers import ctbench

CT5N = Path(__file__).parent / "real" / "pydicom-ct-tiny" / "CT5N_regular_5slices"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
UID_ROOT = "1.2.826.0.1.3680043.8.498.7"


def _identified_copy(dst: Path, patient: str, k: int, name: str = "QUIMBYXAVIER^LI", description: str = "") -> Path:
    """CT5N with a patient's identifiers (``patient`` is the PatientID), its own UIDs and ``description``."""
    dst.mkdir(parents=True)
    for n, path in enumerate(sorted(CT5N.iterdir())):
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, patient, "19611231"
        ds.AccessionNumber, ds.InstitutionName = f"ACCN{k}77319", "Quixotic Memorial Hospital"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{UID_ROOT}.{k}.1", f"{UID_ROOT}.{k}.2"
        ds.FrameOfReferenceUID, ds.SOPInstanceUID = f"{UID_ROOT}.{k}.3", f"{UID_ROOT}.{k}.4.{n}"
        ds.SeriesDescription = description or f"Chest QUIMBYXAVIER {patient}"
        ds.save_as(dst / path.name)
    return dst


def _texts(path: Path) -> list[bytes]:
    """The bytes to search in one output file: its name, its content, and its gunzipped content."""
    raw = path.read_bytes()
    blobs = [path.name.encode(), raw]
    if raw[:2] == b"\x1f\x8b":
        blobs.append(gzip.decompress(raw))
    return blobs


# ------------------------------------------------------------------------------------------------ unit cases


def test_short_name_parts_match_on_word_boundaries(tmp_path):
    # PatientName LI^WU: both two-letter parts are identifiers; "CLINICAL" holds "LI" inside a word only
    _identified_copy(tmp_path / "a", "PIDA1", 1, name="LI^WU", description="LI WU chest")
    _identified_copy(tmp_path / "b", "PIDB2", 2, name="LI^WU", description="CLINICAL chest WUHAN")
    (named,), (kept,) = read_dicom_series(tmp_path / "a"), read_dicom_series(tmp_path / "b")
    result = convert_tree(tmp_path / "a", tmp_path / "out_a", progress=False)
    assert result.written[0].nifti.name == "001_S5_CT.nii.gz"  # was 001_S5_LI_WU_chest.nii.gz
    assert named.label == "S5 '[removed]' (CT, 5 files)"
    result = convert_tree(tmp_path / "b", tmp_path / "out_b", progress=False)
    assert result.written[0].nifti.name == "001_S5_CLINICAL_chest_WUHAN.nii.gz"
    assert "CLINICAL" in kept.label


def test_keep_uids_keeps_uids_only(tmp_path):
    src = _identified_copy(tmp_path / "src", "PIDK3", 3)
    written = convert_tree(src, tmp_path / "out", keep_uids=True, progress=False).written[0]
    side = json.loads(written.sidecar.read_text())
    assert side["series_description"] == "[removed]"  # holds the name and the PatientID: scrubbed all the same
    assert side["SeriesInstanceUID"] == f"{UID_ROOT}.3.2" and side["StudyInstanceUID"] == f"{UID_ROOT}.3.1"
    text = json.dumps({k: v for k, v in side.items() if not k.endswith("InstanceUID") and k != "FrameOfReferenceUID"})
    for needle in ("QUIMBYXAVIER", "PIDK3", "19611231", "ACCN377319", "QUIXOTIC", UID_ROOT):
        assert needle not in text.upper(), needle


def test_a_folder_named_by_an_identifier_becomes_a_stable_pseudonym(tmp_path):
    (series,) = read_dicom_series(_identified_copy(tmp_path / "PIDF4", "PIDF4", 4))
    expected = "dicom_" + hashlib.sha256(b"PIDF4").hexdigest()[:12]
    assert folder_case_id("PIDF4", series) == expected
    name_part = "dicom_" + hashlib.sha256(b"QUIMBYXAVIER_chest").hexdigest()[:12]
    assert folder_case_id("QUIMBYXAVIER_chest", series) == name_part  # a name part, on a word boundary
    assert folder_case_id("case_004", series) == "case_004"


# ------------------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_no_identifier_in_anything_written_but_the_dicom_seg(tmp_path):
    """Series folders named by PatientID -> train (debug=fast) -> predict (NIfTI and DICOM SEG) -> convert;
    every file written anywhere below the test folder but the inputs (run folders with .hydra/, logs,
    TensorBoard events and checkpoints, outputs/, cache, predictions, converted files), every NIfTI header
    field and extension, and the console are searched for every identifier, multi-valued tags and dates
    included. Only the SEG holds them, on purpose."""
    export, labels = tmp_path / "export", tmp_path / "labels"
    patients = [f"PIDZ{k}4417" for k in range(6)]
    for k, patient in enumerate(patients):
        folder = _identified_copy(export / patient, patient, k)
        for path in folder.iterdir():  # multi-valued identifiers and a study date, one part in the description
            ds = pydicom.dcmread(path)
            ds.OtherPatientIDs, ds.OperatorsName = [f"OPIDA{k}991", f"OPIDB{k}992"], ["OPALEWSKI^Q", "ZYWICKA^R"]
            ds.StudyDate = "20190312"
            ds.SeriesDescription = f"Chest OPIDB{k}992 ZYWICKA 2019-03-12"
            ds.save_as(path)
        (series,) = read_dicom_series(folder)
        image = series_to_nifti(series)
        label = (np.asarray(image.dataobj) > -300).astype(np.uint8)
        labels.mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(label, image.affine), labels / f"{patient}.nii.gz")  # labels named by the folder
    run, cache = tmp_path / "run", tmp_path / "cache"
    consoles = [ctbench("train", "debug=fast", "progress_bar=false", "dataset=dicom", f"dataset.series={export}/*",
                        f"dataset.labels={labels}", "dataset.preprocessing.spacing=[2.0,2.0,2.5]",
                        f"paths.cache_dir={cache}", f"hydra.run.dir={run}", cwd=tmp_path, separate_process=True)]
    ckpt = f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"
    consoles.append(ctbench("predict", ckpt, f"input={export / patients[0]}", f"output_dir={tmp_path / 'pred'}",
                            "output_format=dicom-seg", "progress_bar=false", cwd=tmp_path, separate_process=True))
    # the whole console of each process (in-process runs would miss what libraries log to the original stderr)
    consoles.append(ctbench("convert", str(export), str(tmp_path / "converted"), cwd=tmp_path, separate_process=True))
    per_case = (run / "report" / "per_case.csv").read_text()
    assert "dicom_" in per_case  # the cases are there, under their pseudonyms
    assert list(run.rglob("events.out.tfevents*")), "TensorBoard events are part of the search"
    needles = [*patients, "QUIMBYXAVIER", "19611231", "77319", "QUIXOTIC", UID_ROOT, "OPIDA0991", "OPIDB0992",
               "OPALEWSKI", "ZYWICKA", "20190312", "2019-03-12"]
    searched, segs, headers = 0, [], 0
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(export)
               and not p.is_relative_to(labels)]
    assert any(".hydra" in p.parts for p in written), "the run folders' .hydra/ are part of the search"
    for path in written:
        if path.suffix == ".dcm" and pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID == SEG_STORAGE:
            segs.append(path)  # the one output that may hold identifiers: excluded here, and only it
            continue
        searched += 1
        for blob in _texts(path):
            for needle in needles:
                assert needle.encode() not in blob.upper(), (str(path.relative_to(tmp_path)), needle)
        if path.name.endswith((".nii", ".nii.gz")) and not path.is_symlink():
            header = nib.load(str(path)).header
            fields = [bytes(header[f]) for f in ("descrip", "aux_file", "intent_name", "db_name")]
            fields += [bytes(e.get_content()) if isinstance(e.get_content(), bytes) else str(e.get_content()).encode()
                       for e in header.extensions]
            headers += 1
            for field in fields:
                for needle in needles:
                    assert needle.encode() not in field.upper(), (str(path.relative_to(tmp_path)), needle)
    for proc in consoles:
        for needle in needles:
            assert needle not in (proc.stdout + proc.stderr).upper(), needle
    assert searched > 10 and headers >= 2 and len(segs) == 1
    seg = pydicom.dcmread(segs[0], stop_before_pixels=True)
    assert (seg.PatientID, seg.StudyInstanceUID) == (patients[0], f"{UID_ROOT}.0.1")  # the exception is real
