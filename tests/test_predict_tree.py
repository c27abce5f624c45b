"""``ctbench predict`` on a tree of real DICOM series (issue 25 items 2 and 3): every good series is predicted,
each bad one is named with its reason and a hint that works, the exit is non-zero; DICOM SEG on a legal series
with an empty SpecificCharacterSet; a case whose SEG fails leaves no file behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import pytest

from ctbench.errors import CTBenchError

from cli_helpers import ctbench

REAL = Path(__file__).parent / "data" / "real"
pytestmark = pytest.mark.slow


def predict(trained_run: Path, cwd: Path, *args: str):
    return ctbench("predict", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", "progress_bar=false", *args,
                   cwd=cwd, check=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A hospital-style tree: the dcmqi 3-slice CT (good), pydicom's 5-slice CT (good) and its 4-slice series
    with 161 missing slices (bad)."""
    root = tmp_path / "tree"
    shutil.copytree(REAL / "dcmqi-ct-3slice-liver" / "dicom", root / "liver")
    shutil.copytree(REAL / "pydicom-ct-tiny" / "CT5N_regular_5slices", root / "regular")
    shutil.copytree(REAL / "pydicom-ct-tiny" / "CT2_gap_4slices", root / "gap")
    return root


def test_one_bad_series_does_not_stop_the_tree(trained_run: Path, tmp_path: Path, tree: Path) -> None:
    out = tmp_path / "masks"
    proc = predict(trained_run, tmp_path, f"input={tree}", f"output_dir={out}")
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("ctbench: error: 1 input(s) not predicted, 2 written to")
    assert "'Routine Brain'" in line and "missing slices" in line and "(force=true predicts it anyway)" in line
    assert sorted(p.name for p in out.iterdir()) == ["000_S2_CT.nii.gz", "002_S5_SmartScore_Gated_0_5_sec.nii.gz"]  # names as with force=true
    forced = predict(trained_run, tmp_path, f"input={tree}", f"output_dir={tmp_path / 'forced'}", "force=true")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert len(list((tmp_path / "forced").iterdir())) == 3


def test_dicom_seg_on_the_dcmqi_series_and_a_refusal_without_uids(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    proc = predict(trained_run, tmp_path, f"input={REAL / 'dcmqi-ct-3slice-liver' / 'dicom'}", f"output_dir={out}",
                   "output_format=dicom-seg")
    assert proc.returncode == 0, proc.stderr[-2000:]
    seg = hd.seg.segread(out / "000_S2_CT.dcm")
    assert seg.Modality == "SEG" and seg.PatientID == "99000"  # the source study's patient module, for the PACS
    refused = predict(trained_run, tmp_path, f"input={REAL / 'totalseg-ct-dicom' / 'dicom'}",
                      f"output_dir={tmp_path / 'none'}", "output_format=dicom-seg")
    assert refused.returncode == 1 and not (tmp_path / "none").exists()
    assert refused.stderr.strip().splitlines()[-1].endswith("a DICOM SEG cannot reference it; use output_format=nifti")


def test_a_failed_seg_leaves_no_file_and_the_rerun_needs_no_overwrite(trained_run: Path, tmp_path: Path,
                                                                      monkeypatch) -> None:
    from ctbench.data.dicom import seg as seg_module
    from ctbench.engine.predict import load_members, predict_inputs

    def failing(*args, **kwargs):
        raise CTBenchError("highdicom refused the SEG")

    from ctbench.config import compose_with_context

    cfg, ctx = compose_with_context("predict", [f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}",
                                                "output_format=dicom-seg"])
    members = load_members(cfg, ctx)
    out, source = tmp_path / "masks", REAL / "dcmqi-ct-3slice-liver" / "dicom"
    monkeypatch.setattr(seg_module, "dicom_seg", failing)
    with pytest.raises(CTBenchError, match="highdicom refused the SEG"):
        predict_inputs(members, source, out, cfg)
    assert not out.exists() or not any(out.iterdir())
    monkeypatch.undo()
    assert [p.name for p in predict_inputs(members, source, out, cfg)] == ["000_S2_CT.nii.gz"]
