"""Case lists and splits for every dataset source (``dataset.kind``).

A case is a dict ``{"case": id, "image": path, "label": path}``. Kinds:

- ``synthetic``: the CT phantom, generated on first use (MSD layout).
- ``msd``: Medical Segmentation Decathlon / nnU-Net v2 raw folder (``dataset.json``, ``imagesTr/``,
  ``labelsTr/``); ``manifest`` and ``lists`` read other MSD-style manifests (BTCV's ``dataset_0.json``
  with its ``training`` and ``validation`` lists).
- ``nifti``: image and label globs, paired in sorted order.
- ``case_folders``: one folder per case holding the image and the label under fixed names
  (KiTS19/KiTS23: ``case_00000/imaging.nii.gz`` + ``segmentation.nii.gz``).
- ``totalsegmentator``: one folder per subject with ``ct.nii.gz`` and one binary mask per structure in
  ``segmentations/<structure>.nii.gz``; the masks of the configured classes are merged once into one
  label map (value = index in ``class_names``), cached under the dataset cache folder.
- ``dicom``: CT DICOM series (one tree walked, or a glob of series folders) with NIfTI label maps;
  each series is converted once to NIfTI under the dataset cache folder and then used like ``nifti``.

Every kind accepts ``case_pattern`` (shell pattern on case ids, e.g. AMOS's CT cases ``amos_0[0-4]*``).
Derived files (merged label maps, converted series) live in ``dataset.cache_dir`` and are keyed by
what they were made from (class list, file sizes and modification times), so a changed source or
config never reuses a stale file.

Splits hold a fixed test set and k folds over the rest; they are written once beside the dataset
cache (``splits.json``) and read back by every later run, so runs with the same ``fold`` compare on
the same cases.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctbench.errors import CTBenchError

SPLIT_SEED = 12345  # fixed so that the split depends on the dataset only, never on the training seed
KINDS = ("synthetic", "msd", "nifti", "case_folders", "totalsegmentator", "dicom")
#: bump when the derived-file formats change, so old caches are not reused
DERIVED_VERSION = 1


def _inside(root: Path, relative: str, what: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse paths that escape it (``../``, absolute)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise CTBenchError(f"{what} entry '{relative}' points outside the dataset folder {root}: "
                           "keep every file inside the dataset root")
    return path


def _sha1(data: Any) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _stamp(path: Path) -> list[Any]:
    """``[name, size, mtime_ns]`` of a file: changes whenever the file is rewritten."""
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def _require_folder(root: Path, what: str) -> None:
    if not root.is_dir():
        raise CTBenchError(f"dataset folder {root} does not exist: set dataset.root=PATH to {what}")


def _missing_error(cases: list[dict[str, Any]], where: str) -> None:
    missing = [c[k] for c in cases for k in ("image", "label") if not Path(c[k]).exists()]
    if missing:
        raise CTBenchError(f"{where} lists {len(missing)} missing file(s), first: {missing[0]}; "
                           "run `ctbench check-data` and fix the listing")


def derived_dir(dataset: Mapping[str, Any]) -> Path:
    """Where derived files of this dataset live: ``dataset.cache_dir``, else ``./data/cache/<name>``."""
    folder = dataset.get("cache_dir") or Path("data") / "cache" / str(dataset.get("name") or dataset["kind"])
    return Path(str(folder)).resolve()


# ------------------------------------------------------------------------------------------------ msd


def _manifest(root: Path, manifest: str = "dataset.json") -> dict[str, Any]:
    path = root / manifest
    if not path.is_file():
        raise CTBenchError(f"{root} has no {manifest}: expected an MSD/nnU-Net raw folder "
                           f"({manifest}, imagesTr/, labelsTr/)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CTBenchError(f"{path} is not valid JSON ({err}): fix or regenerate it") from err


def _msd_cases(root: Path, check_files: bool = True, manifest: str = "dataset.json",
               lists: Sequence[str] = ("training",)) -> list[dict[str, Any]]:
    _require_folder(root, "an MSD/nnU-Net folder (dataset.json, imagesTr/, labelsTr/)")
    meta = _manifest(root, manifest)
    ending = meta.get("file_ending", ".nii.gz")
    entries = [e for key in lists for e in (meta.get(key) or []) if isinstance(e, Mapping) and "label" in e]
    cases = []
    if entries:  # MSD: explicit list (paths relative to root, image name without _0000)
        for entry in entries:
            image = _inside(root, entry["image"], manifest)
            label = _inside(root, entry["label"], manifest)
            channel = image.with_name(image.name.replace(ending, f"_0000{ending}"))
            if not image.exists() and channel.exists():  # nnU-Net v2: the image carries the channel suffix
                image = channel
            cases.append({"case": label.name.removesuffix(ending), "image": str(image), "label": str(label)})
    else:  # nnU-Net v2: labelsTr/CASE.ext with imagesTr/CASE_0000.ext
        for label in sorted((root / "labelsTr").glob(f"*{ending}")):
            case = label.name.removesuffix(ending)
            cases.append({"case": case, "image": str(root / "imagesTr" / f"{case}_0000{ending}"),
                          "label": str(label)})
    if check_files:
        _missing_error(cases, f"{manifest} in {root}")
    if not cases:
        raise CTBenchError(f"no training cases in {root}: {manifest} '{'/'.join(lists)}' is empty and labelsTr/ "
                           f"has no *{ending} files")
    return cases


def msd_labels(root: Path, manifest: str = "dataset.json") -> dict[int, str]:
    """``{id: name}`` from an MSD (``{"1": "liver"}``) or nnU-Net v2 (``{"liver": 1}``) ``labels`` block."""
    labels = json.loads((root / manifest).read_text()).get("labels", {})
    out = {}
    for key, value in labels.items():
        if str(key).isdigit():
            out[int(key)] = str(value)
        elif isinstance(value, int):
            out[value] = str(key)
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------------------------------ nifti


def _nifti_cases(images: str, labels: str) -> list[dict[str, Any]]:
    image_files, label_files = sorted(glob.glob(images)), sorted(glob.glob(labels))
    if not image_files:
        raise CTBenchError(f"no image matches dataset.images='{images}': give a glob such as /data/ct/*.nii.gz")
    if len(image_files) != len(label_files):
        raise CTBenchError(f"{len(image_files)} images match '{images}' but {len(label_files)} labels match "
                           f"'{labels}': each image needs one label map, in the same sorted order")
    return [{"case": Path(lbl).name.split(".")[0], "image": img, "label": lbl}
            for img, lbl in zip(image_files, label_files, strict=True)]


# ------------------------------------------------------------------------------------------------ case folders


def _case_folders(dataset: Mapping[str, Any], check_files: bool) -> list[dict[str, Any]]:
    """``root/<case_glob>/<image_file>`` and ``root/<case>/<label_file>`` (KiTS19/KiTS23 layout)."""
    root = Path(str(dataset["root"]))
    image_file, label_file = str(dataset.get("image_file", "imaging.nii.gz")), str(dataset.get("label_file",
                                                                                               "segmentation.nii.gz"))
    pattern = str(dataset.get("case_glob") or "*")
    _require_folder(root, f"a folder of case folders ({pattern}/{image_file}, {pattern}/{label_file})")
    folders = sorted(p for p in root.glob(pattern) if p.is_dir())
    cases = [{"case": f.name, "image": str(f / image_file), "label": str(f / label_file)} for f in folders]
    if not cases:
        raise CTBenchError(f"no case folder matches {root}/{pattern}: expected e.g. {root}/case_00000/{image_file} "
                           f"(set dataset.case_glob)")
    if check_files:
        _missing_error(cases, f"the case folders of {root}")
    return cases


# ------------------------------------------------------------------------------------------------ TotalSegmentator


def _subjects(dataset: Mapping[str, Any]) -> tuple[Path, list[Path]]:
    root = Path(str(dataset["root"]))
    image_file, masks = str(dataset.get("image_file", "ct.nii.gz")), str(dataset.get("masks_dir", "segmentations"))
    pattern = str(dataset.get("case_glob") or "*")
    _require_folder(root, f"a TotalSegmentator folder ({pattern}/{image_file}, {pattern}/{masks}/<structure>.nii.gz)")
    subjects = sorted(p for p in root.glob(pattern) if p.is_dir() and (p / masks).is_dir())
    if not subjects:
        raise CTBenchError(f"no subject folder with a {masks}/ folder matches {root}/{pattern}: expected "
                           f"{root}/s0001/{image_file} and {root}/s0001/{masks}/liver.nii.gz")
    return root, subjects


def structure_names(dataset: Mapping[str, Any]) -> list[str]:
    """Sorted structure names (mask file names without ``.nii.gz``) of the first TotalSegmentator subject."""
    _, subjects = _subjects(dataset)
    masks = subjects[0] / str(dataset.get("masks_dir", "segmentations"))
    return sorted(p.name.removesuffix(".nii.gz") for p in masks.glob("*.nii.gz"))


def _merge_masks(mask_files: Sequence[Path], out: Path) -> None:
    """Write one label map: voxel = index (1-based) of the last mask that covers it."""
    import nibabel as nib

    from ctbench.atomic import atomic_write

    first = nib.load(str(mask_files[0]))
    shape = first.shape[:3]
    dtype = np.uint8 if len(mask_files) < 256 else np.uint16
    merged = np.zeros(shape, dtype=dtype)
    for value, path in enumerate(mask_files, start=1):
        img = nib.load(str(path))
        if img.shape[:3] != shape or not np.allclose(img.affine, first.affine, atol=1e-3):
            raise CTBenchError(f"{path}: mask grid {img.shape} differs from {mask_files[0].name} {shape}: "
                               "all masks of a subject must share one voxel grid")
        merged[np.asarray(img.dataobj).reshape(shape) > 0] = value
    img = nib.Nifti1Image(merged, first.affine, header=first.header)
    img.set_data_dtype(dtype)
    img.header.set_slope_inter(1, 0)
    atomic_write(out, lambda fh: fh.write(_gzip(img.to_bytes())))


def _gzip(raw: bytes) -> bytes:
    import gzip

    return gzip.compress(raw, compresslevel=1, mtime=0)


def _totalseg_cases(dataset: Mapping[str, Any], check_files: bool) -> list[dict[str, Any]]:
    """Subjects with their per-structure masks merged into one cached label map per subject."""
    root, subjects = _subjects(dataset)
    image_file, masks = str(dataset.get("image_file", "ct.nii.gz")), str(dataset.get("masks_dir", "segmentations"))
    names = list(dataset.get("class_names") or [])
    structures = names[1:] if names else structure_names(dataset)  # class 0 is the background (no file)
    if not structures:
        raise CTBenchError("dataset.class_names lists no structure: give [background, liver, ...]")
    key = _sha1({"structures": structures, "version": DERIVED_VERSION})[:12]
    out_dir = derived_dir(dataset) / "merged_labels" / key
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / "classes.json").exists():
        (out_dir / "classes.json").write_text(json.dumps(["background", *structures], indent=1) + "\n")
    cases, todo = [], []
    for subject in subjects:
        files = [subject / masks / f"{s}.nii.gz" for s in structures]
        absent = [f for f in files if not f.exists()]
        if absent:
            bad = absent[0].name.removesuffix(".nii.gz")
            raise CTBenchError(f"{subject.name}: no {masks}/{absent[0].name} ({len(absent)} of {len(files)} masks "
                               f"missing): '{bad}' is not a structure of this dataset; check dataset.class_names "
                               f"(names of the files in {masks}/)")
        label = out_dir / f"{subject.name}.nii.gz"
        stamp = _sha1([_stamp(f) for f in files])
        stamp_file = out_dir / f"{subject.name}.stamp"
        if not (label.exists() and stamp_file.exists() and stamp_file.read_text() == stamp):
            todo.append((files, label, stamp_file, stamp))
        cases.append({"case": subject.name, "image": str(subject / image_file), "label": str(label)})
    if todo:
        print(f"merging {len(structures)} TotalSegmentator masks into one label map for {len(todo)} subject(s) "
              f"(once; cached in {out_dir})", file=sys.stderr)
    for files, label, stamp_file, stamp in todo:
        _merge_masks(files, label)
        stamp_file.write_text(stamp)
    if check_files:
        _missing_error(cases, f"the subject folders of {root}")
    return cases


# ------------------------------------------------------------------------------------------------ DICOM


def _tree_key(folder: Path) -> str:
    """Cheap fingerprint of a folder: every file's relative path, size and modification time."""
    entries = sorted([str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns]
                     for p in folder.rglob("*") if p.is_file())
    return _sha1(entries)


def _dicom_series(dataset: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``[(case id, DicomSeries)]`` for every CT series: tree mode (``dicom_dir``) or folder mode (``series``)."""
    from ctbench.data.dicom import output_stem, read_dicom_series

    tree, pattern = dataset.get("dicom_dir"), dataset.get("series")
    if bool(tree) == bool(pattern):
        raise CTBenchError("dataset=dicom needs exactly one of dataset.dicom_dir=TREE (every CT series is a case) "
                           "or dataset.series='GLOB' (one series folder per case)", exit_code=2)
    out: list[tuple[str, Any]] = []
    if tree:
        index = 0
        for series in read_dicom_series(Path(str(tree))):
            if series.is_ct_volume:
                index += 1  # the counter of `ctbench convert`, so case ids equal its file names
                out.append((output_stem(series, index), series))
        return out
    folders = sorted(Path(p) for p in glob.glob(str(pattern)) if Path(p).is_dir())
    if not folders:
        raise CTBenchError(f"no folder matches dataset.series='{pattern}': give a glob of DICOM series folders")
    for folder in folders:
        cts = [s for s in read_dicom_series(folder) if s.is_ct_volume]
        if len(cts) != 1:
            found = "no CT series" if not cts else f"{len(cts)} CT series ({', '.join(s.label for s in cts)})"
            raise CTBenchError(f"{folder}: {found}; with dataset.series each folder must hold one CT series "
                               "(use dataset.dicom_dir=TREE for mixed folders)")
        out.append((folder.name, cts[0]))
    return out


def _dicom_labels(dataset: Mapping[str, Any]) -> dict[str, Path]:
    """``{case id: label file}`` from ``label_mapping`` (JSON) or ``labels`` (folder of ``<case>.nii.gz``)."""
    mapping = dataset.get("label_mapping")
    if mapping:
        path = Path(str(mapping))
        try:
            table = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CTBenchError(f"dataset.label_mapping {path} is not a readable JSON object ({err})") from None
        return {str(k): (path.parent / str(v)).resolve() for k, v in table.items()}
    folder = Path(str(dataset.get("labels") or ""))
    if not dataset.get("labels") or not folder.is_dir():
        raise CTBenchError(f"dataset.labels={folder} is not a folder: give the folder of NIfTI label maps named "
                           "<case>.nii.gz, or dataset.label_mapping=FILE.json")
    return {p.name.removesuffix(".nii.gz").removesuffix(".nii"): p.resolve()
            for p in sorted(folder.iterdir()) if p.name.endswith((".nii.gz", ".nii"))}


def align_label(image: Path, label: Path, out: Path, tolerance_mm: float = 0.01) -> Path:
    """``label`` on ``image``'s voxel grid when the two grids are the same up to axis flips/permutations
    (dcm2niix and TotalSegmentator flip the rows against ctbench's converter); written to ``out`` once.
    Any other mismatch returns ``label`` unchanged (the integrity check then reports it)."""
    import nibabel as nib
    from nibabel.orientations import io_orientation, ornt_transform

    img, lab = nib.load(str(image)), nib.load(str(label))
    if img.shape[:3] == lab.shape[:3] and np.allclose(img.affine, lab.affine, atol=tolerance_mm):
        return label
    key, stamp = _sha1([str(label), _stamp(label), _stamp(image)]), out.with_suffix(".stamp")
    if out.exists() and stamp.exists() and stamp.read_text() == key:
        return out
    moved = lab.as_reoriented(ornt_transform(io_orientation(lab.affine), io_orientation(img.affine)))
    if moved.shape[:3] != img.shape[:3] or not np.allclose(moved.affine, img.affine, atol=tolerance_mm):
        return label
    from ctbench.atomic import atomic_write

    data = np.asarray(moved.dataobj)
    aligned = nib.Nifti1Image(data, img.affine)
    aligned.set_data_dtype(data.dtype)
    aligned.set_sform(img.affine, code=1)
    aligned.set_qform(img.affine, code=1)
    atomic_write(out, lambda fh: fh.write(_gzip(aligned.to_bytes())))
    stamp.write_text(key)
    return out


def _dicom_cases(dataset: Mapping[str, Any], check_files: bool) -> list[dict[str, Any]]:
    """DICOM series converted once to NIfTI (cached by the series files' stamps), paired with label maps."""
    from ctbench.atomic import atomic_write_json
    from ctbench.data.dicom import _write_nifti, series_to_nifti

    out_dir = derived_dir(dataset) / "dicom_nifti"
    source = Path(str(dataset.get("dicom_dir") or dataset.get("series") or ""))
    force = bool(dataset.get("force", False))
    labels = _dicom_labels(dataset)
    index_file = out_dir / "index.json"
    tree_key = _tree_key(source) if dataset.get("dicom_dir") and source.is_dir() else None
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    cases: list[dict[str, Any]] = []
    known = {c["case"]: c for c in index.get("cases", [])}
    if tree_key and index.get("tree_key") == tree_key and index.get("force") == force and all(
            c in known and Path(known[c]["image"]).exists() for c in index.get("series", []) if c in labels):
        converted = known  # tree unchanged and every labelled series converted: no DICOM header is read
        all_series = list(index["series"])
    else:
        converted = {}
        found = _dicom_series(dataset)
        all_series = [c for c, _ in found]
        if not found:
            raise CTBenchError(f"no CT series under {source}: `ctbench convert {source} OUT` lists what is there")
        stale = []
        for case, series in found:
            if case not in labels:
                continue
            nii = out_dir / f"{case}.nii.gz"
            key = _sha1({"files": [[str(f), *_stamp(f)[1:]] for f in series.files], "force": force,
                         "version": DERIVED_VERSION})
            stamp = out_dir / f"{case}.stamp"
            if not (nii.exists() and stamp.exists() and stamp.read_text() == key):
                if not series.can_convert(force):
                    blocking = "; ".join(p.message for p in series.problems)
                    raise CTBenchError(f"DICOM series {case} ({series.label}) cannot be converted: {blocking}"
                                       + (" (dataset.force=true writes it anyway)"
                                          if all(p.forcible for p in series.problems) and not force else ""))
                stale.append((case, series, nii, stamp, key))
            converted[case] = {"case": case, "image": str(nii)}
        for n, (case, series, nii, stamp, key) in enumerate(stale, start=1):
            print(f"converting DICOM series {n}/{len(stale)}: {case} ({series.n_slices} slices) -> {nii}",
                  file=sys.stderr)
            _write_nifti(nii, series_to_nifti(series, force=force))
            stamp.write_text(key)
        unlabelled = [c for c, _ in found if c not in labels]
        if unlabelled:
            print(f"{len(unlabelled)} CT series without a label map skipped (first: {unlabelled[0]}); "
                  f"name a label <case>.nii.gz after it to use it", file=sys.stderr)
        if tree_key:
            atomic_write_json(index_file, {"tree_key": tree_key, "force": force, "series": [c for c, _ in found],
                                           "cases": sorted(converted.values(), key=lambda c: c["case"])})
    for case in sorted(converted):
        if case not in labels:
            continue
        image = Path(converted[case]["image"])
        label = labels[case]
        if label.exists() and image.exists():
            label = align_label(image, label, out_dir / "labels" / f"{case}.nii.gz")
        cases.append({"case": case, "image": str(image), "label": str(label)})
    if not cases:
        raise CTBenchError(f"no DICOM series under {source} has a label map: name each label after its case "
                           f"({', '.join(all_series[:3])}) or give dataset.label_mapping")
    if check_files:
        _missing_error(cases, "the DICOM dataset")
    return cases


# ------------------------------------------------------------------------------------------------ public


def list_cases(dataset: Mapping[str, Any], check_files: bool = True) -> list[dict[str, Any]]:
    """Every labelled case of the dataset config (``dataset.kind``: see the module docstring).

    ``check_files=False`` lists cases whose files are missing too (the integrity check reports them).
    """
    kind = dataset["kind"]
    if kind == "synthetic":
        from ctbench.data.synthetic import PhantomSpec, ensure_dataset

        spec = dataset["phantom"]
        ensure_dataset(dataset["root"], PhantomSpec(cases=spec["cases"], seed=spec["seed"],
                                                    voxel_mm=tuple(spec["voxel_mm"]), noise_hu=spec["noise_hu"]))
        cases = _msd_cases(Path(dataset["root"]), check_files)
    elif kind == "msd":
        cases = _msd_cases(Path(str(dataset["root"])), check_files, str(dataset.get("manifest") or "dataset.json"),
                           list(dataset.get("lists") or ["training"]))
    elif kind == "nifti":
        cases = _nifti_cases(dataset["images"], dataset["labels"])
    elif kind == "case_folders":
        cases = _case_folders(dataset, check_files)
    elif kind == "totalsegmentator":
        cases = _totalseg_cases(dataset, check_files)
    elif kind == "dicom":
        cases = _dicom_cases(dataset, check_files)
    else:
        raise CTBenchError(f"unknown dataset.kind '{kind}': use one of {', '.join(KINDS)}", exit_code=2)
    pattern = dataset.get("case_pattern")
    if pattern:
        kept = [c for c in cases if fnmatch.fnmatchcase(c["case"], str(pattern))]
        if not kept:
            raise CTBenchError(f"dataset.case_pattern='{pattern}' matches none of the {len(cases)} cases "
                               f"(e.g. {cases[0]['case']})")
        cases = kept
    return cases


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
    dataset itself (before the model's ``out_channels`` is read): the ``labels`` of an MSD manifest, or
    the sorted structure names of a TotalSegmentator folder."""
    if dataset.get("class_names"):
        dataset["num_classes"] = len(dataset["class_names"])
        return
    if dataset.get("kind") == "totalsegmentator":
        dataset["class_names"] = ["background", *structure_names(dataset)]
        dataset["num_classes"] = len(dataset["class_names"])
        return
    root = Path(str(dataset.get("root", "")))
    manifest = str(dataset.get("manifest") or "dataset.json")
    if dataset.get("root") and not root.is_dir():
        _require_folder(root, f"the dataset folder ({manifest}, imagesTr/, labelsTr/)")
    if not (root / manifest).is_file():
        raise CTBenchError(f"dataset.class_names is null and {root} has no {manifest} to read them from: "
                           "point dataset.root at an MSD/nnU-Net folder or list the classes, e.g. "
                           "dataset.class_names=[background,liver]")
    labels = msd_labels(root, manifest)
    if sorted(labels) != list(range(len(labels))):
        raise CTBenchError(f"labels in {root / manifest} are not 0..N-1 ({sorted(labels)}): "
                           "set dataset.class_names explicitly")
    dataset["class_names"] = [labels[i] for i in range(len(labels))]
    dataset["num_classes"] = len(labels)
