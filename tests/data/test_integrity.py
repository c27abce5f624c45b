"""``ctbench check-data``: every bad case reported at once (files written by the test + one real case)."""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from ctbench.data import integrity
from ctbench.data.integrity import Problem, check_case, check_cases

REAL = Path(__file__).parent / "real" / "totalseg-abdomen-ct"
AFFINE = np.array([[-1.5, 0, 0, 30.0], [0, -1.5, 0, 20.0], [0, 0, 2.5, -40.0], [0, 0, 0, 1]])
LABELS = {0: "background", 1: "liver", 2: "spleen"}


def _image(shape=(8, 8, 4), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 100, shape).astype(np.float32)


def _label(shape=(8, 8, 4)) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[2:5, 2:5, 1:3] = 1
    lab[5:7, 5:7, :] = 2
    return lab


def _save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> str:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


def _case(tmp: Path, name: str, image=None, label=None, image_affine=AFFINE, label_affine=AFFINE) -> dict:
    image = _image() if image is None else image
    label = _label() if label is None else label
    return {"case": name, "image": _save(tmp / f"{name}_0000.nii.gz", image, image_affine),
            "label": _save(tmp / f"{name}.nii.gz", label, label_affine)}


def _messages(problems: list[Problem], case: str) -> str:
    return " | ".join(p.message for p in problems if p.case == case)


def test_every_bad_case_is_reported_at_once(tmp_path):
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.5
    flipped = AFFINE @ np.array([[-1, 0, 0, 7], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    tiny = AFFINE.copy()
    tiny[2, 3] += 1e-5
    nan_img, inf_img = _image(), _image()
    nan_img[0, 0, 0] = np.nan
    inf_img[1, 1, 1] = np.inf
    undeclared = _label()
    undeclared[0, 0, 0] = 7
    fractional = _label().astype(np.float32)
    fractional[0, 0, 0] = 0.5
    cases = [
        _case(tmp_path, "good"),
        _case(tmp_path, "good_float_labels", label=_label().astype(np.float32)),
        _case(tmp_path, "good_within_tolerance", label_affine=tiny),
        _case(tmp_path, "shape", label=_label((8, 8, 5))),
        _case(tmp_path, "origin", label_affine=shifted),
        _case(tmp_path, "orientation", label_affine=flipped),
        _case(tmp_path, "nan", image=nan_img),
        _case(tmp_path, "inf", image=inf_img),
        _case(tmp_path, "constant", image=np.full((8, 8, 4), -1024, np.int16)),
        _case(tmp_path, "undeclared", label=undeclared),
        _case(tmp_path, "fractional", label=fractional),
        _case(tmp_path, "four_d", image=_image((8, 8, 4, 2))),
        _case(tmp_path, "trailing_one", image=_image((8, 8, 4, 1))),
    ]
    truncated = _case(tmp_path, "truncated")
    blob = Path(truncated["image"]).read_bytes()
    Path(truncated["image"]).write_bytes(blob[: len(blob) // 2])
    zero = _case(tmp_path, "zero_bytes")
    Path(zero["label"]).write_bytes(b"")
    garbage = _case(tmp_path, "garbage")
    Path(garbage["image"]).write_bytes(np.random.default_rng(3).bytes(2000))
    cases += [truncated, zero, garbage, {"case": "missing", "image": str(tmp_path / "nope_0000.nii.gz"),
                                          "label": str(tmp_path / "nope.nii.gz")}]

    problems = check_cases(cases, LABELS, tolerance_mm=1e-3)

    for name in ("good", "good_float_labels", "good_within_tolerance", "trailing_one"):
        assert _messages(problems, name) == "", name
    expected = {
        "shape": "image shape (8, 8, 4) and label shape (8, 8, 5) differ",
        "origin": "corner voxels up to 0.5 mm apart",
        "orientation": "orientation LPS vs RPS",
        "nan": "image has 1 NaN voxel(s)",
        "inf": "image has 1 infinite voxel(s)",
        "constant": "image has one single value (-1024) everywhere",
        "undeclared": "label values not declared in the dataset's labels: 7 (declared: 0, 1, 2)",
        "fractional": "label map has non-integer values (1 voxels, e.g. 0.5)",
        "four_d": "4D image (shape (8, 8, 4, 2))",
        "truncated": "unreadable",
        "zero_bytes": "empty file (0 bytes)",
        "garbage": "unreadable",
        "missing": "file not found",
    }
    for name, words in expected.items():
        assert words in _messages(problems, name), (name, _messages(problems, name))
    # the missing case names both of its files
    assert len([p for p in problems if p.case == "missing"]) == 2
    # geometry problems concern the pair, file problems name the file
    assert next(p for p in problems if p.case == "origin").file == ""
    assert next(p for p in problems if p.case == "zero_bytes").file.endswith("zero_bytes.nii.gz")
    assert all("\n" not in p.message for p in problems)


def test_label_check_skipped_without_declared_labels(tmp_path):
    lab = _label()
    lab[0, 0, 0] = 9
    assert check_case(_case(tmp_path, "c", label=lab), None) == []


def test_tolerance_is_in_millimetres(tmp_path):
    shifted = AFFINE.copy()
    shifted[1, 3] += 0.05
    case = _case(tmp_path, "c", label_affine=shifted)
    assert check_case(case, LABELS, tolerance_mm=0.1) == []
    assert "0.05 mm apart" in check_case(case, LABELS, tolerance_mm=0.01)[0].message


def test_nrrd_label_against_nifti_image_in_world_coordinates(tmp_path):
    """SimpleITK-read (LPS) and nibabel-read (RAS) files are compared in one frame."""
    case = _case(tmp_path, "c")
    label = sitk.GetImageFromArray(_label().transpose(2, 1, 0))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ AFFINE
    zooms = np.linalg.norm(lps[:3, :3], axis=0)
    label.SetSpacing(zooms.tolist())
    label.SetDirection((lps[:3, :3] / zooms).ravel().tolist())
    label.SetOrigin(lps[:3, 3].tolist())
    sitk.WriteImage(label, str(tmp_path / "c.nrrd"))
    case["label"] = str(tmp_path / "c.nrrd")
    assert check_case(case, LABELS) == []
    label.SetOrigin((lps[0, 3] + 2.0, lps[1, 3], lps[2, 3]))
    sitk.WriteImage(label, str(tmp_path / "c.nrrd"))
    assert "2 mm apart" in check_case(case, LABELS)[0].message


def test_duplicate_case_names(tmp_path):
    a = _case(tmp_path, "a")
    assert "case name used by 2 entries" in _messages(check_cases([a, dict(a)], LABELS), "a")


def test_real_totalsegmentator_case(tmp_path):
    names = {}
    for line in (REAL / "labels_total_v2.tsv").read_text().splitlines()[1:]:
        value, name = line.split("\t")
        names[int(value)] = name
    case = {"case": "example", "image": str(REAL / "example_ct_sm.nii.gz"), "label": str(REAL / "example_seg.nii.gz")}
    assert check_cases([case], names) == []
    problems = check_cases([case], {0: "background", 1: "spleen", 5: "liver"})
    assert len(problems) == 1 and "not declared" in problems[0].message and ": 2, 3, 4, 6" in problems[0].message


def test_run_cli_prints_table_and_exit_code(tmp_path, monkeypatch, capsys):
    good, bad = _case(tmp_path, "good"), _case(tmp_path, "bad", label=_label((8, 8, 5)))
    seen = {}

    dataset = {"name": "t", "reader": {"_target_": "ctbench.data.readers.nifti.NiftiGlobReader"},
               "class_names": [LABELS[i] for i in sorted(LABELS)], "preprocessing": {"spacing": [1, 1, 1]}}

    def fake(overrides):
        seen["overrides"] = overrides
        return [good, bad], dataset

    monkeypatch.setattr(integrity, "_cases_from_config", fake)
    args = argparse.Namespace(overrides=["dataset=msd", "dataset.root=/x", "tolerance_mm=0.5"])
    assert integrity.run_cli(args) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "1 problem(s) in 1 of 2 case(s)" in out and "bad" in out
    assert seen["overrides"] == ["dataset=msd", "dataset.root=/x"]
    monkeypatch.setattr(integrity, "_cases_from_config", lambda overrides: ([good], dataset))
    assert integrity.run_cli(argparse.Namespace(overrides=[])) == 0
    assert "all 1 case(s) passed" in capsys.readouterr().out


def test_check_data_command_on_a_nifti_dataset(tmp_path, capsys):
    """End to end through the CLI and the composed config (dataset=nifti with globs)."""
    from ctbench.cli import main

    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    _save(tmp_path / "img" / "a.nii.gz", _image())
    _save(tmp_path / "lab" / "a.nii.gz", _label())
    _save(tmp_path / "img" / "b.nii.gz", _image())
    _save(tmp_path / "lab" / "b.nii.gz", _label((8, 8, 3)))
    overrides = ["check-data", "dataset=nifti", f"dataset.images={tmp_path}/img/*.nii.gz",
                 f"dataset.labels={tmp_path}/lab/*.nii.gz"]
    rc = main([*overrides, "dataset.class_names=[background,liver,lesion]"])
    out = " ".join(capsys.readouterr().out.split())
    assert rc == 1 and "1 problem(s) in 1 of 2 case(s)" in out
    # nifti's default class_names are [background, foreground]: value 2 is undeclared in both labels
    rc = main(overrides)
    out = " ".join(capsys.readouterr().out.split())
    assert rc == 1 and "3 problem(s) in 2 of 2 case(s)" in out and "not declared" in out


def test_check_data_unknown_override_is_one_line(capsys):
    from ctbench.cli import main

    assert main(["check-data", "dataset=no_such_dataset"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_dataset" in err[0]


@pytest.mark.parametrize("ending", [".nii", ".nii.gz"])
def test_uncompressed_and_compressed_nifti(tmp_path, ending):
    case = {"case": "c", "image": _save(tmp_path / f"i{ending}", _image()),
            "label": _save(tmp_path / f"l{ending}", _label())}
    assert check_case(case, LABELS) == []
