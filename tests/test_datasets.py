"""Case lists (MSD / nnU-Net v2 layouts), path safety and splits."""

from __future__ import annotations

import json

import pytest

from ctbench.data.datasets import list_cases
from ctbench.data.readers.msd import msd_labels
from ctbench.data.splits import load_or_make_splits, make_splits, select_fold
from ctbench.errors import CTBenchError


def msd(root, **keys) -> dict:
    """A dataset config for the MSD/nnU-Net reader on ``root``."""
    return {"name": "t", "reader": {"_target_": "ctbench.data.readers.msd.MSDReader"}, "root": str(root), **keys}


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_nnunet_v2_layout(tmp_path):
    for case in ("liver_001", "liver_002"):
        _touch(tmp_path / "imagesTr" / f"{case}_0000.nii.gz")
        _touch(tmp_path / "labelsTr" / f"{case}.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2},
         "numTraining": 2, "file_ending": ".nii.gz"}))
    cases = list_cases(msd(tmp_path))
    assert [c["case"] for c in cases] == ["liver_001", "liver_002"]
    assert cases[0]["image"].endswith("imagesTr/liver_001_0000.nii.gz")
    assert msd_labels(tmp_path) == {0: "background", 1: "liver", 2: "tumour"}


def test_msd_listing_escaping_root_is_refused(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"labels": {"0": "background", "1": "liver"},
         "training": [{"image": "../../etc/passwd", "label": "./labelsTr/a.nii.gz"}]}))
    with pytest.raises(CTBenchError, match="points outside the dataset folder"):
        list_cases(msd(tmp_path))


def test_dataset_json_that_lies_about_files(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"labels": {"0": "background", "1": "liver"},
         "training": [{"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"}]}))
    with pytest.raises(CTBenchError, match="lists 2 missing file"):
        list_cases(msd(tmp_path))


def test_splits_are_disjoint_cover_everything_and_persist(tmp_path):
    cases = [f"c{i:02d}" for i in range(12)]
    splits = make_splits(cases, test_cases=2, num_folds=5)
    vals = [set(f["val"]) for f in splits["folds"]]
    assert set().union(*vals) == set(cases) - set(splits["test"])
    assert all(not a & b for i, a in enumerate(vals) for b in vals[i + 1:])
    for fold in splits["folds"]:
        assert not set(fold["train"]) & set(fold["val"]) and not set(fold["train"]) & set(splits["test"])
    path = tmp_path / "splits.json"
    first = load_or_make_splits(path, cases, 2, 5)
    assert load_or_make_splits(path, cases, 2, 5) == first == splits
    with pytest.raises(CTBenchError, match="fold=7 is out of range"):
        select_fold(first, 7)
