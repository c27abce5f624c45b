"""``ctbench score --labels`` with a label that no truth and no prediction holds (issue 25 item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from ctbench.reports.score import score


def save(data: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.uint8), np.eye(4)), str(path))


def test_absent_label_is_reported_absent_and_left_out_of_the_means(tmp_path: Path, capsys) -> None:
    truth = np.zeros((10, 10, 4), np.uint8)
    truth[2:6, 2:6, 1:3] = 5                      # 32 voxels of label 5
    pred = np.zeros_like(truth)
    pred[2:6, 2:5, 1:3] = 5                       # 24 of them: Dice = 2*24/(24+32) = 0.857142...
    save(truth, tmp_path / "truth" / "a.nii.gz")
    save(pred, tmp_path / "pred" / "a.nii.gz")
    assert score(tmp_path / "pred", tmp_path / "truth", tmp_path / "out", labels={5: "liver", 12: "absent"}) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["absent_labels"] == {"12": "absent"} and summary["labels"] == {"5": "liver"}
    assert summary["mean_dice"] == summary["per_class"]["liver"]["dice"]
    assert abs(summary["mean_dice"] - 48 / 56) < 1e-9
    assert "absent" not in summary["per_class"]
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "12=absent" in warnings[0] and "left out of the means" in warnings[0]
    csv_classes = {line.split(",")[1] for line in (tmp_path / "out" / "per_case.csv").read_text().splitlines()[1:]}
    assert "absent" not in csv_classes
