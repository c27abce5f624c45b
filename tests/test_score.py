"""End-to-end tests of ``ctbench score`` on small NIfTI files written here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctbench.cli import main
from ctbench.errors import CTBenchError
from ctbench.metrics import PER_CASE_COLUMNS, read_per_case_csv
from ctbench.reports.score import parse_labels, score

SPACING = (0.8, 0.8, 2.5)


def affine(origin=(-10.0, 5.0, 3.0)):
    a = np.diag([*SPACING, 1.0])
    a[:3, 3] = origin
    return a


def truth_map():
    t = np.zeros((16, 16, 6), np.uint8)
    t[2:8, 2:8, 1:5] = 1  # 6x6x4 = 144 voxels
    t[10:14, 10:14, 2:4] = 2  # 4x4x2 = 32 voxels
    return t


def save(arr, path, aff=None):
    nib.save(nib.Nifti1Image(arr, affine() if aff is None else aff), str(path))


@pytest.fixture
def dirs(tmp_path):
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir()
    truth.mkdir()
    return pred, truth, tmp_path / "out"


def test_good_mismatched_missing_extra(dirs, capsys):
    pred, truth, out = dirs
    t = truth_map()
    # good: class 1 shifted by 2 voxels along x (0.8 mm) -> dice 4/6, hd95 1.6 mm; class 2 exact
    p = t.copy()
    p[p == 1] = 0
    p[4:10, 2:8, 1:5] = 1
    save(t, truth / "good.nii.gz")
    save(p, pred / "good.nii")  # .nii matches .nii.gz
    save(t, truth / "moved.nii.gz")
    save(t, pred / "moved.nii.gz", affine(origin=(-10.0, 5.0, 3.5)))  # origin off by 0.5 mm
    save(t, truth / "lost.nii.gz")  # no prediction
    save(t, pred / "stray.nii.gz")  # no truth
    save(t, truth / "coarse.nii.gz")
    save(t[:, :, :5], pred / "coarse.nii.gz")  # shape mismatch

    rc = score(pred, truth, out=out, labels={1: "liver", 2: "spleen"})
    assert rc == 1
    rows = read_per_case_csv(out / "per_case.csv")
    assert (out / "per_case.csv").read_text().splitlines()[0] == ",".join(PER_CASE_COLUMNS)
    assert [(r["case"], r["class"]) for r in rows] == [("good", "liver"), ("good", "spleen")]
    liver, spleen = rows
    assert liver["dice"] == pytest.approx(2 * 96 / 288) and liver["iou"] == pytest.approx(96 / 192)
    assert liver["hd95"] == pytest.approx(1.6)  # 2 voxels x 0.8 mm, the truth's spacing
    assert spleen["dice"] == 1.0 and spleen["hd95"] == 0.0

    text = (out / "summary.json").read_text()
    s = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))  # strict JSON
    assert s["status"] == "complete" and s["n_cases"] == 1 and s["n_skipped"] == 4
    assert s["mean_dice"] == pytest.approx((2 / 3 + 1) / 2)
    assert s["per_class"]["liver"]["hd95"] == pytest.approx(1.6)
    assert s["mean_over_classes"] == ["liver", "spleen"] and s["empty_policy"]
    reasons = {k["case"]: k["reason"] for k in s["skipped"]}
    assert set(reasons) == {"moved", "lost", "stray", "coarse"}
    assert "origin" in reasons["moved"] and "missing prediction" in reasons["lost"]
    assert "extra prediction" in reasons["stray"] and "shape" in reasons["coarse"]
    printed = capsys.readouterr().out
    for case in ("moved", "lost", "stray", "coarse"):
        assert case in printed
    assert "liver" in printed and "0.667" in printed


def test_all_good_default_labels_exit_0(dirs):
    pred, truth, out = dirs
    t1 = truth_map()
    t2 = truth_map()
    t2[t2 == 2] = 0
    t2[0, 0, 0] = 3  # label 3 only in this case's truth
    p2 = t2.copy()
    p2[15, 15, 5] = 9  # a label in no truth: not scored by default
    save(t1, truth / "a.nii.gz")
    save(t1, pred / "a.nii.gz")
    save(t2, truth / "b.nii.gz")
    save(p2.astype(np.int16), pred / "b.nii.gz")
    assert score(pred, truth, out=out) == 0
    rows = read_per_case_csv(out / "per_case.csv")
    assert [(r["case"], r["class"]) for r in rows] == [
        (c, f"label_{k}") for c in ("a", "b") for k in (1, 2, 3)]
    by = {(r["case"], r["class"]): r for r in rows}
    # label 3 absent from case a's truth and prediction: the both-empty policy
    assert by[("a", "label_3")]["dice"] == 1.0 and by[("a", "label_3")]["hd95"] == 0.0
    assert by[("b", "label_2")]["dice"] == 1.0 and by[("b", "label_2")]["truth_voxels"] == 0
    assert by[("b", "label_3")]["truth_voxels"] == 1 and by[("b", "label_3")]["dice"] == 1.0
    s = json.loads((out / "summary.json").read_text())
    assert s["n_skipped"] == 0 and s["labels"] == {"1": "label_1", "2": "label_2", "3": "label_3"}


def test_empty_prediction_counts_hd95_undefined(dirs):
    pred, truth, out = dirs
    save(truth_map(), truth / "a.nii.gz")
    save(np.zeros((16, 16, 6), np.uint8), pred / "a.nii.gz")
    assert score(pred, truth, out=out, labels={1: "liver"}) == 0
    (row,) = read_per_case_csv(out / "per_case.csv")
    assert row["dice"] == 0 and math.isnan(row["hd95"]) and row["rve"] == -1
    assert ",,," in (out / "per_case.csv").read_text().splitlines()[1]  # hd95, assd empty cells
    s = json.loads((out / "summary.json").read_text())
    assert s["per_class"]["liver"]["hd95_undefined"] == 1 and s["per_class"]["liver"]["hd95_nan_dropped"] is None
    # the miss counts at the image diagonal (docs/report-format.md): 16 x 16 x 6 voxels of 0.8 x 0.8 x 2.5 mm
    assert s["per_class"]["liver"]["hd95"] == pytest.approx(math.hypot(16 * 0.8, 16 * 0.8, 6 * 2.5), abs=1e-6)


def test_probability_map_and_unreadable_listed(dirs):
    pred, truth, out = dirs
    save(truth_map(), truth / "prob.nii.gz")
    save(truth_map().astype(np.float32) * 0.4, pred / "prob.nii.gz")
    save(truth_map(), truth / "broken.nii.gz")
    (pred / "broken.nii.gz").write_bytes(b"not a nifti")
    save(truth_map(), truth / "ok.nii.gz")
    save(truth_map().astype(np.float32), pred / "ok.nii.gz")  # float but integral: fine
    assert score(pred, truth, out=out) == 1
    s = json.loads((out / "summary.json").read_text())
    reasons = {k["case"]: k["reason"] for k in s["skipped"]}
    assert "non-integer" in reasons["prob"] and "cannot read" in reasons["broken"]
    assert s["n_cases"] == 1 and s["mean_dice"] == 1.0


def test_parse_labels():
    assert parse_labels(["2=spleen", "1=liver"]) == {1: "liver", 2: "spleen"}
    assert parse_labels(None) is None
    for bad in (["liver"], ["0=background"], ["1=a", "1=b"], ["x=liver"]):
        with pytest.raises(CTBenchError):
            parse_labels(bad)


def test_cli_user_errors_one_line(dirs, capsys):
    pred, truth, out = dirs
    assert main(["score", str(pred / "nope"), str(truth), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "PRED_DIR" in err and "Traceback" not in err
    assert main(["score", str(pred), str(truth), "--out", str(out)]) == 1  # no truth files
    assert "no *.nii" in capsys.readouterr().err
    assert main(["score", str(pred), str(truth), "--labels", "liver"]) == 2
    assert "ID=NAME" in capsys.readouterr().err


def test_cli_dispatch(dirs):
    pred, truth, out = dirs
    save(truth_map(), truth / "a.nii.gz")
    save(truth_map(), pred / "a.nii.gz")
    assert main(["score", str(pred), str(truth), "--out", str(out), "--labels", "1=liver", "--tolerance", "2"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["tolerance_mm"] == 2.0 and list(s["per_class"]) == ["liver"]


REAL = Path(__file__).parent / "data" / "real" / "totalseg-ct-dicom"


def test_totalsegmentator_map_scores_against_a_prediction_on_the_converters_grid(tmp_path, capsys):
    """The real series: ``ctbench convert`` writes rows in DICOM order, TotalSegmentator's map has them flipped
    (issue 15: "origin (249.5, 437.5, -804.5) vs (249.5, -61.51, -804.5) mm"). One world grid: reoriented, said
    in one line, Dice 1 for every class; a grid moved by half a voxel is still refused."""
    converted = tmp_path / "converted"
    assert main(["convert", str(REAL / "dicom"), str(converted)]) == 0
    ct = nib.load(str(next(converted.glob("*.nii.gz"))))
    seg = nib.load(str(REAL / "example_seg_dicom.nii.gz"))
    assert not np.allclose(ct.affine, seg.affine)  # the pair the issue could not score
    world = nib.orientations.ornt_transform(nib.orientations.io_orientation(seg.affine),
                                            nib.orientations.io_orientation(ct.affine))
    on_ct_grid = nib.orientations.apply_orientation(np.asarray(seg.dataobj), world).astype(np.uint8)
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir()
    truth.mkdir()
    nib.save(nib.Nifti1Image(on_ct_grid, ct.affine), str(pred / "series.nii.gz"))
    nib.save(seg, str(truth / "series.nii.gz"))
    shifted = ct.affine.copy()
    shifted[:3, 3] += 0.5 * ct.affine[:3, 1]  # half a row off: another grid
    nib.save(nib.Nifti1Image(on_ct_grid, shifted), str(pred / "moved.nii.gz"))
    nib.save(seg, str(truth / "moved.nii.gz"))
    assert score(pred, truth, out=tmp_path / "out") == 1  # moved is refused
    out = capsys.readouterr().out
    assert "series: prediction is on the truth's world grid in another voxel order (flipped y)" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["reoriented"] == [{"case": "series", "voxel_axes": "flipped y"}]
    assert [s["case"] for s in summary["skipped"]] == ["moved"]
    assert "geometry differs from truth: origin" in summary["skipped"][0]["reason"]
    assert summary["n_cases"] == 1 and len(summary["per_class"]) >= 5
    assert all(entry["dice"] == 1.0 for entry in summary["per_class"].values())
