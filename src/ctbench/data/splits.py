"""Train/val/test splits: ctbench's own (a fixed test set and k folds over the rest, written once to
``splits.json`` beside the dataset cache) or nnU-Net's ``splits_final.json`` (``dataset.splits=nnunet``),
so a ctbench run and an nnU-Net run compare on the same folds. ``dataset.phase_split: {train: PHASE, test:
PHASE}`` trains and validates on one contrast phase and tests on another (:func:`make_phase_splits`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctbench.errors import CTBenchError

SPLIT_SEED = 12345  # fixed so that the split depends on the dataset only, never on the training seed
SPLIT_SOURCES = ("ctbench", "nnunet")


def make_splits(cases: list[str], test_cases: int, num_folds: int) -> dict[str, Any]:
    """A fixed test set and ``num_folds`` train/val folds over the remaining cases (nnU-Net style)."""
    order = [cases[i] for i in np.random.default_rng(SPLIT_SEED).permutation(len(cases))]
    test, rest = sorted(order[:test_cases]), order[test_cases:]
    if len(rest) < 2:
        raise CTBenchError(f"{len(cases)} cases leave {len(rest)} for training after {test_cases} test cases: "
                           "need at least 2 (lower dataset.test_cases or add cases)")
    return {"test": test, "folds": _folds(rest, num_folds)}


def _folds(rest: list[str], num_folds: int) -> list[dict[str, list[str]]]:
    """``num_folds`` train/val folds over ``rest`` (in its order): fold k validates on every num_folds-th case."""
    folds = []
    num_folds = max(2, min(num_folds, len(rest)))
    for k in range(num_folds):
        val = sorted(rest[k::num_folds])
        folds.append({"train": sorted(c for c in rest if c not in val), "val": val})
    return folds


def make_phase_splits(phases: Mapping[str, str], train: str, test: str, test_cases: int,
                      num_folds: int) -> dict[str, Any]:
    """Train on one contrast phase, test on another (``dataset.phase_split``): ``test_cases`` cases of phase
    ``test`` (drawn with :data:`SPLIT_SEED`) are the test set, ``num_folds`` train/val folds cover the cases of
    phase ``train``; cases of other phases, and test-phase cases beyond ``test_cases``, are in no split. The
    design of the survey's statement on the conservative loss (section 4.5, Zhu et al. 2018): generalisation
    to a phase never seen in training or checkpoint selection. ``phases`` maps case id -> phase."""
    pools = {p: sorted(c for c, q in phases.items() if q == p) for p in (train, test)}
    if len(pools[test]) < test_cases:
        raise CTBenchError(f"dataset.phase_split: {len(pools[test])} {test} case(s), fewer than dataset.test_cases="
                           f"{test_cases}: lower dataset.test_cases or add cases")
    if len(pools[train]) < 2:
        raise CTBenchError(f"dataset.phase_split: {len(pools[train])} {train} case(s) to train on: need at least 2 "
                           "(add cases of that phase)")
    rng = np.random.default_rng(SPLIT_SEED)
    test_set = sorted(pools[test][i] for i in rng.permutation(len(pools[test]))[:test_cases])
    rest = [pools[train][i] for i in rng.permutation(len(pools[train]))]
    return {"test": test_set, "folds": _folds(rest, num_folds), "phase_split": {"train": train, "test": test}}


def phase_split_of(dataset: Mapping[str, Any], phases: Mapping[str, str]) -> tuple[str, str] | None:
    """``dataset.phase_split`` as (train phase, test phase), checked against the phases the cases have;
    None when it is unset (the ordinary split)."""
    value = dataset.get("phase_split")
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"train", "test"}:
        raise CTBenchError(f"dataset.phase_split={value}: give {{train: PHASE, test: PHASE}} (or null for the "
                           "ordinary split)", exit_code=2)
    train, test = str(value["train"]), str(value["test"])
    known = sorted(set(phases.values()))
    if not known:
        raise CTBenchError("dataset.phase_split needs each case's contrast phase (the `phase` of its dataset.json "
                           "entry, as the CT phantom writes it): this dataset records none; drop dataset.phase_split")
    unknown = [p for p in (train, test) if p not in known]
    if unknown or train == test:
        problem = f"unknown phase {unknown[0]!r}" if unknown else "the same phase for train and test"
        raise CTBenchError(f"dataset.phase_split={{train: {train}, test: {test}}}: {problem}; the cases' phases are "
                           f"{', '.join(known)}", exit_code=2)
    return train, test


def load_or_make_splits(path: Path, cases: list[str], test_cases: int, num_folds: int,
                        phases: Mapping[str, str] | None = None,
                        phase_split: tuple[str, str] | None = None) -> dict[str, Any]:
    """Read ``splits.json`` if it matches these cases (and ``phase_split``: train and test phase, with
    ``phases`` the phase of each case), else write a new one (atomically)."""
    from ctbench.atomic import atomic_write_json

    if phase_split is None:
        expected, testable, trainable = set(cases), set(cases), len(cases) - test_cases
    else:  # the train phase's cases in the folds, test cases of the test phase only
        expected = {c for c in cases if phases.get(c) == phase_split[0]}
        testable, trainable = {c for c in cases if phases.get(c) == phase_split[1]}, len(expected)
    num_folds = max(2, min(num_folds, trainable))
    stored_split = None if phase_split is None else {"train": phase_split[0], "test": phase_split[1]}
    if path.exists():
        splits = json.loads(path.read_text())
        trained = set(splits["folds"][0]["train"]) | set(splits["folds"][0]["val"])
        known = trained if phase_split else trained | set(splits["test"])
        if (known == expected and len(splits["test"]) == test_cases and len(splits["folds"]) == num_folds
                and splits.get("phase_split") == stored_split and set(splits["test"]) <= testable):
            return splits
    splits = make_splits(cases, test_cases, num_folds) if phase_split is None else make_phase_splits(
        {c: phases[c] for c in cases if c in phases}, *phase_split, test_cases, num_folds)
    atomic_write_json(path, splits)
    return splits


def nnunet_splits(path: Path, cases: Sequence[str]) -> dict[str, Any]:
    """nnU-Net's ``splits_final.json`` (``[{"train": [...], "val": [...]}, ...]``, one entry per fold) as ctbench
    splits. Cases in no fold are the test set; when every case is in a fold (nnU-Net's usual file), each
    fold is tested on its own val cases, where nnU-Net reports its cross-validation."""
    if not path.is_file():
        raise CTBenchError(f"dataset.splits=nnunet: {path} does not exist; set dataset.splits_file=PATH to the "
                           "splits_final.json in nnU-Net's preprocessed folder (nnUNet_preprocessed/DatasetXXX_NAME/)")
    try:
        folds = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CTBenchError(f"{path} is not valid JSON ({err}): fix it or use dataset.splits=ctbench") from None
    if not (isinstance(folds, list) and folds and all(
            isinstance(f, Mapping) and isinstance(f.get("train"), list) and isinstance(f.get("val"), list)
            for f in folds)):
        raise CTBenchError(f"{path} is not nnU-Net's splits_final.json: expected a list of "
                           '{"train": [...], "val": [...]}, one per fold')
    listed = {str(c) for f in folds for c in [*f["train"], *f["val"]]}
    unknown = sorted(listed - set(cases))
    if unknown:
        raise CTBenchError(f"{path} names {len(unknown)} case(s) this dataset does not have (e.g. "
                           f"{', '.join(unknown[:3])}): point dataset.splits_file at this dataset's splits")
    test = sorted(set(cases) - listed)
    out_folds = [{"train": sorted(map(str, f["train"])), "val": sorted(map(str, f["val"]))} for f in folds]
    if not test:
        print(f"dataset.splits=nnunet: every case is in a fold of {path.name}; each fold is tested on its val cases",
              file=sys.stderr)
        out_folds = [{**f, "test": f["val"]} for f in out_folds]
    return {"test": test, "folds": out_folds, "source": str(path)}


def dataset_splits(dataset: Mapping[str, Any], cases: list[str], cache_dir: Path) -> dict[str, Any]:
    """The splits ``dataset.splits`` names: ``ctbench`` (``cache_dir/splits.json``, made once) or ``nnunet``
    (``dataset.splits_file``, default ``<dataset.root>/splits_final.json``)."""
    source = str(dataset.get("splits") or "ctbench")
    if source == "nnunet":
        path = dataset.get("splits_file") or Path(str(dataset.get("root", "."))) / "splits_final.json"
        return nnunet_splits(Path(str(path)), cases)
    if source != "ctbench":
        raise CTBenchError(f"unknown dataset.splits={source}: use one of {', '.join(SPLIT_SOURCES)}", exit_code=2)
    phases, phase_split = None, None
    if dataset.get("phase_split") is not None:
        from ctbench.data.datasets import reader_for

        listed = set(cases)
        phases = {c: p for c, p in reader_for(dataset).case_phases().items() if c in listed}
        phase_split = phase_split_of(dataset, phases)
    return load_or_make_splits(cache_dir / "splits.json", cases, int(dataset["test_cases"]), int(dataset["num_folds"]),
                               phases, phase_split)


def select_fold(splits: Mapping[str, Any], fold: int) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "test": [...]}`` case ids for ``fold`` (a fold may carry its own test)."""
    if not 0 <= fold < len(splits["folds"]):
        raise CTBenchError(f"fold={fold} is out of range: this dataset has folds 0..{len(splits['folds']) - 1}")
    return {"test": list(splits["test"]), **splits["folds"][fold]}
