"""Case lists and splits for the dataset sources: ``synthetic``, ``msd`` (MSD / nnU-Net v2 raw) and ``nifti``.

A case is a dict ``{"case": id, "image": path, "label": path}``. Splits hold a fixed test set and
k folds over the rest; they are written once beside the dataset cache (``splits.json``) and read back
by every later run, so runs with the same ``fold`` compare on the same cases.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ctbench.errors import CTBenchError

SPLIT_SEED = 12345  # fixed so that the split depends on the dataset only, never on the training seed


def _inside(root: Path, relative: str, what: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse paths that escape it (``../``, absolute)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise CTBenchError(f"{what} entry '{relative}' points outside the dataset folder {root}: "
                           "keep every file inside the dataset root")
    return path


def _msd_cases(root: Path, check_files: bool = True) -> list[dict[str, Any]]:
    manifest = root / "dataset.json"
    if not root.is_dir():
        raise CTBenchError(f"dataset folder {root} does not exist: set dataset.root=PATH to an MSD/nnU-Net folder "
                           "(dataset.json, imagesTr/, labelsTr/)")
    if not manifest.is_file():
        raise CTBenchError(f"{root} has no dataset.json: expected an MSD/nnU-Net raw folder "
                           "(dataset.json, imagesTr/, labelsTr/)")
    try:
        meta = json.loads(manifest.read_text())
    except json.JSONDecodeError as err:
        raise CTBenchError(f"{manifest} is not valid JSON ({err}): fix or regenerate it") from err
    ending = meta.get("file_ending", ".nii.gz")
    cases = []
    if meta.get("training"):  # MSD: explicit list (paths relative to root, image name without _0000)
        for entry in meta["training"]:
            image = _inside(root, entry["image"], "dataset.json")
            label = _inside(root, entry["label"], "dataset.json")
            if not image.exists():  # nnU-Net v2 lists the case name; the image carries the channel suffix
                image = image.with_name(image.name.replace(ending, f"_0000{ending}"))
            cases.append({"case": label.name.removesuffix(ending), "image": str(image), "label": str(label)})
    else:  # nnU-Net v2: labelsTr/CASE.ext with imagesTr/CASE_0000.ext
        for label in sorted((root / "labelsTr").glob(f"*{ending}")):
            case = label.name.removesuffix(ending)
            cases.append({"case": case, "image": str(root / "imagesTr" / f"{case}_0000{ending}"),
                          "label": str(label)})
    missing = [c["image"] for c in cases if check_files and not Path(c["image"]).exists()]
    missing += [c["label"] for c in cases if check_files and not Path(c["label"]).exists()]
    if missing:
        raise CTBenchError(f"dataset.json in {root} lists {len(missing)} missing file(s), first: {missing[0]}; "
                           "run `ctbench check-data` and fix the listing")
    if not cases:
        raise CTBenchError(f"no training cases in {root}: dataset.json 'training' is empty and labelsTr/ has no "
                           f"*{ending} files")
    return cases


def msd_labels(root: Path) -> dict[int, str]:
    """``{id: name}`` from an MSD (``{"1": "liver"}``) or nnU-Net v2 (``{"liver": 1}``) ``labels`` block."""
    labels = json.loads((root / "dataset.json").read_text()).get("labels", {})
    out = {}
    for key, value in labels.items():
        if str(key).isdigit():
            out[int(key)] = str(value)
        elif isinstance(value, int):
            out[value] = str(key)
    return dict(sorted(out.items()))


def _nifti_cases(images: str, labels: str) -> list[dict[str, Any]]:
    image_files, label_files = sorted(glob.glob(images)), sorted(glob.glob(labels))
    if not image_files:
        raise CTBenchError(f"no image matches dataset.images='{images}': give a glob such as /data/ct/*.nii.gz")
    if len(image_files) != len(label_files):
        raise CTBenchError(f"{len(image_files)} images match '{images}' but {len(label_files)} labels match "
                           f"'{labels}': each image needs one label map, in the same sorted order")
    return [{"case": Path(lbl).name.split(".")[0], "image": img, "label": lbl}
            for img, lbl in zip(image_files, label_files, strict=True)]


def list_cases(dataset: Mapping[str, Any], check_files: bool = True) -> list[dict[str, Any]]:
    """Every labelled case of the dataset config (``dataset.kind`` = synthetic, msd or nifti).

    ``check_files=False`` lists cases whose files are missing too (the integrity check reports them).
    """
    kind = dataset["kind"]
    if kind == "synthetic":
        from ctbench.data.synthetic import PhantomSpec, ensure_dataset

        spec = dataset["phantom"]
        ensure_dataset(dataset["root"], PhantomSpec(cases=spec["cases"], seed=spec["seed"],
                                                    voxel_mm=tuple(spec["voxel_mm"]), noise_hu=spec["noise_hu"]))
        return _msd_cases(Path(dataset["root"]), check_files)
    if kind == "msd":
        return _msd_cases(Path(dataset["root"]), check_files)
    if kind == "nifti":
        return _nifti_cases(dataset["images"], dataset["labels"])
    raise CTBenchError(f"unknown dataset.kind '{kind}': use synthetic, msd or nifti", exit_code=2)


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


def select_fold(splits: Mapping[str, Any], fold: int) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "test": [...]}`` case ids for ``fold``."""
    if not 0 <= fold < len(splits["folds"]):
        raise CTBenchError(f"fold={fold} is out of range: this dataset has folds 0..{len(splits['folds']) - 1}")
    return {**splits["folds"][fold], "test": list(splits["test"])}


def resolve_classes(dataset: Any) -> None:
    """Fill ``class_names`` and ``num_classes`` of a dataset config whose ``class_names`` is null from the
    dataset's own ``dataset.json`` labels (before the model's ``out_channels`` is read)."""
    if dataset.get("class_names"):
        dataset["num_classes"] = len(dataset["class_names"])
        return
    root = Path(str(dataset.get("root", "")))
    if not (root / "dataset.json").is_file():
        raise CTBenchError(f"dataset.class_names is null and {root / 'dataset.json'} does not exist: "
                           "list the classes, e.g. dataset.class_names=[background,liver]")
    labels = msd_labels(root)
    if sorted(labels) != list(range(len(labels))):
        raise CTBenchError(f"labels in {root / 'dataset.json'} are not 0..N-1 ({sorted(labels)}): "
                           "set dataset.class_names explicitly")
    dataset["class_names"] = [labels[i] for i in range(len(labels))]
    dataset["num_classes"] = len(labels)
