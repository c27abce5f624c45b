"""``dataset.phase_split``: train and validate on one contrast phase, test on the other (C23's design)."""

from __future__ import annotations

import json

import pytest

from ctbench.config import compose
from ctbench.data.splits import dataset_splits, make_phase_splits, select_fold
from ctbench.errors import CTBenchError


def phantom_like(root, phases: list[str]) -> dict:
    """An MSD folder whose ``dataset.json`` records each case's phase the way the CT phantom writes it
    (case i in ``phases[(i // 2) % len(phases)]``); the split reads only the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    cases = [{"image": f"./imagesTr/p_{i:03d}.nii.gz", "label": f"./labelsTr/p_{i:03d}.nii.gz", "phase": phase}
             for i, phase in enumerate(phases)]
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1}, "training": cases}))
    return {c["label"].split("/")[-1].removesuffix(".nii.gz"): c["phase"] for c in cases}


def dataset(root, phase_split, test_cases: int = 48, num_folds: int = 3) -> dict:
    return {"name": "t", "reader": {"_target_": "ctbench.data.readers.msd.MSDReader"}, "root": str(root),
            "test_cases": test_cases, "num_folds": num_folds, "phase_split": phase_split}


PHANTOM_PHASE = [("non_contrast", "portal_venous", "portal_venous")[(i // 2) % 3] for i in range(72)]


def test_phase_split_tests_on_the_unseen_phase_only(tmp_path):
    """dataset=phantom_phase's layout: 24 non-contrast cases in 3 folds of 16/8, the 48 portal-venous ones
    the test set; written once, read back the same, and independent of the order the cases come in."""
    phases = phantom_like(tmp_path / "data", PHANTOM_PHASE)
    cfg = dataset(tmp_path / "data", {"train": "non_contrast", "test": "portal_venous"})
    splits = dataset_splits(cfg, sorted(phases), tmp_path / "cache")
    assert splits["phase_split"] == {"train": "non_contrast", "test": "portal_venous"}
    assert len(splits["test"]) == 48 and {phases[c] for c in splits["test"]} == {"portal_venous"}
    for fold in range(3):
        split = select_fold(splits, fold)
        assert (len(split["train"]), len(split["val"])) == (16, 8)
        assert {phases[c] for c in split["train"] + split["val"]} == {"non_contrast"}
        assert not set(split["train"]) & set(split["val"])
    vals = [set(select_fold(splits, k)["val"]) for k in range(3)]
    assert set().union(*vals) == {c for c, p in phases.items() if p == "non_contrast"}  # each case validated once
    assert dataset_splits(cfg, sorted(phases), tmp_path / "cache") == splits
    assert json.loads((tmp_path / "cache" / "splits.json").read_text()) == splits
    assert make_phase_splits(dict(reversed(phases.items())), "non_contrast", "portal_venous", 48, 3) == splits


def test_phase_split_draws_test_cases_from_the_test_phase_and_swaps(tmp_path):
    """40 of 48 test-phase cases; the reverse split trains on portal-venous; the stored ordinary split of the
    same cases is not reused for a phase split (nor the other way round)."""
    phases = phantom_like(tmp_path / "data", PHANTOM_PHASE)
    ordinary = dataset_splits(dataset(tmp_path / "data", None, test_cases=40), sorted(phases), tmp_path / "cache")
    assert {phases[c] for c in ordinary["test"]} == {"non_contrast", "portal_venous"}
    some = dataset_splits(dataset(tmp_path / "data", {"train": "non_contrast", "test": "portal_venous"},
                                  test_cases=40), sorted(phases), tmp_path / "cache")
    assert len(some["test"]) == 40 and {phases[c] for c in some["test"]} == {"portal_venous"}
    reverse = dataset_splits(dataset(tmp_path / "data", {"train": "portal_venous", "test": "non_contrast"},
                                     test_cases=24), sorted(phases), tmp_path / "cache")
    assert {phases[c] for c in reverse["test"]} == {"non_contrast"}
    assert (len(reverse["folds"][0]["train"]), len(reverse["folds"][0]["val"])) == (32, 16)
    again = dataset_splits(dataset(tmp_path / "data", None, test_cases=40), sorted(phases), tmp_path / "cache")
    assert again == ordinary


@pytest.mark.parametrize(("phase_split", "test_cases", "message"), [
    ({"train": "non_contrast", "test": "arterial"}, 48, "unknown phase 'arterial'; the cases' phases are"),
    ({"train": "portal_venous", "test": "portal_venous"}, 48, "the same phase for train and test"),
    ({"train": "non_contrast"}, 48, "give {train: PHASE, test: PHASE}"),
    ({"train": "non_contrast", "test": "portal_venous"}, 49, "48 portal_venous case(s), fewer than"),
])
def test_bad_phase_split_is_one_line(tmp_path, phase_split, test_cases, message):
    phases = phantom_like(tmp_path / "data", PHANTOM_PHASE)
    with pytest.raises(CTBenchError) as err:
        dataset_splits(dataset(tmp_path / "data", phase_split, test_cases), sorted(phases), tmp_path / "cache")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_phase_split_needs_recorded_phases(tmp_path):
    phantom_like(tmp_path / "data", PHANTOM_PHASE)
    manifest = tmp_path / "data" / "dataset.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "training": [{k: v for k, v in e.items() if k != "phase"}
                                                         for e in data["training"]]}))
    with pytest.raises(CTBenchError, match="records none; drop dataset.phase_split"):
        dataset_splits(dataset(tmp_path / "data", {"train": "non_contrast", "test": "portal_venous"}),
                       [f"p_{i:03d}" for i in range(72)], tmp_path / "cache")


def test_phantom_phase_config_splits_by_phase():
    """dataset=phantom_phase composes to the layout the tests above check: 72 cases, phases 1:2, 48 tests."""
    cfg = compose("train", ["dataset=phantom_phase"]).dataset
    assert (cfg.name, cfg.phantom.cases, cfg.test_cases, cfg.num_folds) == ("phantom_phase", 72, 48, 3)
    assert list(cfg.phantom.phases) == ["non_contrast", "portal_venous", "portal_venous"]
    assert dict(cfg.phase_split) == {"train": "non_contrast", "test": "portal_venous"}
    assert cfg.preprocessing.spacing == compose("train", ["dataset=phantom_study"]).dataset.preprocessing.spacing


def test_a_stored_phase_split_is_remade_when_the_phases_change(tmp_path):
    """A regenerated dataset whose cases changed phase (same ids) gets a new split, never a stale test set."""
    swapped = ["portal_venous", "portal_venous", "non_contrast", "non_contrast", *PHANTOM_PHASE[4:]]
    cfg = dataset(tmp_path / "data", {"train": "non_contrast", "test": "portal_venous"})
    before = dataset_splits(cfg, sorted(phantom_like(tmp_path / "data", PHANTOM_PHASE)), tmp_path / "cache")
    phases = phantom_like(tmp_path / "data", swapped)
    after = dataset_splits(cfg, sorted(phases), tmp_path / "cache")
    assert after != before and {phases[c] for c in after["test"]} == {"portal_venous"}
    assert {phases[c] for c in after["folds"][0]["train"] + after["folds"][0]["val"]} == {"non_contrast"}
