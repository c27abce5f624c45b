"""Train/val/test splits: ctbench's own (a fixed test set and k folds over the rest, written once to
``splits.json`` beside the dataset cache) or nnU-Net's ``splits_final.json`` (``dataset.splits=nnunet``),
so a ctbench run and an nnU-Net run compare on the same folds."""

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
    folds = []
    num_folds = max(2, min(num_folds, len(rest)))
    for k in range(num_folds):
        val = sorted(rest[k::num_folds])
        folds.append({"train": sorted(c for c in rest if c not in val), "val": val})
    return {"test": test, "folds": folds}


def load_or_make_splits(path: Path, cases: list[str], test_cases: int, num_folds: int) -> dict[str, Any]:
    """Read ``splits.json`` if it matches these cases, else write a new one (atomically)."""
    from ctbench.atomic import atomic_write_json

    num_folds = max(2, min(num_folds, len(cases) - test_cases))
    if path.exists():
        splits = json.loads(path.read_text())
        known = set(splits["test"]) | set(splits["folds"][0]["train"]) | set(splits["folds"][0]["val"])
        if known == set(cases) and len(splits["test"]) == test_cases and len(splits["folds"]) == num_folds:
            return splits
    splits = make_splits(cases, test_cases, num_folds)
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
    return load_or_make_splits(cache_dir / "splits.json", cases, int(dataset["test_cases"]), int(dataset["num_folds"]))


def select_fold(splits: Mapping[str, Any], fold: int) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "test": [...]}`` case ids for ``fold`` (a fold may carry its own test)."""
    if not 0 <= fold < len(splits["folds"]):
        raise CTBenchError(f"fold={fold} is out of range: this dataset has folds 0..{len(splits['folds']) - 1}")
    return {"test": list(splits["test"]), **splits["folds"][fold]}
