"""Dataset presets (configs/dataset/*.yaml) on tiny fake copies of each benchmark's own folder layout,
and ``dataset=dicom`` on the real TotalSegmentator DICOM series.

Every fake copy is written here with nibabel (16^3 voxels of 4 mm), so the tests need no download; the
configs are composed by Hydra exactly as ``ctbench train dataset=NAME`` composes them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctbench.data.datasets import list_cases, resolve_classes
from ctbench.errors import CTBenchError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared helpers in conftest.py
from cli_helpers import TINY, ctbench  # noqa: E402

REAL = Path(__file__).parent / "real"
MM = 4.0  # voxel size of the fake volumes
SHAPE = (16, 16, 16)


# ------------------------------------------------------------------------------------------------ helpers


def compose(name: str, *overrides: str, tmp: Path) -> dict:
    """The resolved ``dataset`` block of ``ctbench train dataset=NAME`` (paths under ``tmp``)."""
    from omegaconf import OmegaConf

    from ctbench.config import compose as ctbench_compose

    cfg = ctbench_compose("train", [f"dataset={name}", f"paths.root_dir={tmp}", *overrides])
    return OmegaConf.to_container(cfg.dataset, resolve=True)


def ct(seed: int) -> np.ndarray:
    """Air around a soft-tissue block (so the body crop keeps something), int16 HU."""
    rng = np.random.default_rng(seed)
    img = np.full(SHAPE, -1000, np.int16)
    img[2:14, 2:14, 1:15] = (40 + rng.normal(0, 10, (12, 12, 14))).astype(np.int16)
    return img


def labels(n_classes: int, seed: int) -> np.ndarray:
    """Blocks of value 1..n_classes-1 inside the body."""
    lab = np.zeros(SHAPE, np.uint8)
    for value in range(1, n_classes):
        k = (value - 1 + seed) % 6
        lab[3 + 2 * (k % 3): 5 + 2 * (k % 3), 3 + 4 * (k // 3): 7 + 4 * (k // 3), 2 + value % 10: 4 + value % 10] = value
    return lab


def save(path: Path, data: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([MM, MM, MM, 1.0])), str(path))
    return str(path)


def msd_copy(root: Path, prefix: str, label_names: dict, n: int = 4, manifest: str = "dataset.json",
             lists: tuple[str, ...] = ("training",), start: int = 0, ids=None) -> list[str]:
    """An MSD-style folder: ``manifest`` with explicit image/label lists, imagesTr/, labelsTr/."""
    ids = ids or [f"{prefix}_{i}" for i in range(start, start + n)]
    entries = []
    for k, case in enumerate(ids):
        image, label = f"./imagesTr/{case}.nii.gz", f"./labelsTr/{case}.nii.gz"
        save(root / image, ct(k))
        save(root / label, labels(len(label_names), k))
        entries.append({"image": image, "label": label})
    meta = {"name": prefix, "modality": {"0": "CT"}, "labels": label_names, "numTraining": len(ids),
            "training": entries[: len(entries) - (len(lists) > 1)]}
    if len(lists) > 1:
        meta[lists[1]] = entries[-1:]
    (root / manifest).write_text(json.dumps(meta))
    return ids


# ------------------------------------------------------------------------------------------------ MSD presets

MSD = {
    "msd_liver": ("Task03_Liver", "liver", {"0": "background", "1": "liver", "2": "cancer"},
                  [0.77, 0.77, 1.0], [128, 128, 128]),
    "msd_pancreas": ("Task07_Pancreas", "pancreas", {"0": "background", "1": "pancreas", "2": "cancer"},
                     [0.8, 0.8, 2.5], [224, 224, 40]),
    "msd_spleen": ("Task09_Spleen", "spleen", {"0": "background", "1": "spleen"}, [0.79, 0.79, 1.6], [192, 160, 64]),
    "msd_colon": ("Task10_Colon", "colon", {"0": "background", "1": "colon cancer primaries"},
                  [0.78, 0.78, 3.0], [192, 160, 56]),
}


@pytest.mark.parametrize("preset", sorted(MSD))
def test_msd_presets(preset, tmp_path):
    folder, prefix, label_names, spacing, patch = MSD[preset]
    ids = msd_copy(tmp_path / "data" / folder, prefix, label_names)
    ds = compose(preset, tmp=tmp_path)
    assert Path(ds["root"]).resolve() == tmp_path / "data" / folder  # the preset's default root, under paths.data_dir
    assert ds["preprocessing"]["spacing"] == spacing and ds["patch_size_3d"] == patch
    assert ds["preprocessing"]["normalize"] == "zscore" and ds["cache"] == "disk"
    cases = list_cases(ds)
    assert [c["case"] for c in cases] == ids
    assert all(Path(c["image"]).name == f"{c['case']}.nii.gz" and "imagesTr" in c["image"] for c in cases)
    assert all(Path(c["label"]).name == f"{c['case']}.nii.gz" and "labelsTr" in c["label"] for c in cases)
    resolve_classes(ds)
    assert ds["num_classes"] == len(label_names) == len(ds["class_names"])
    assert ds["class_names"][0] == "background"
    # class_names=null reads the names of the dataset.json itself
    ds = compose(preset, "dataset.class_names=null", tmp=tmp_path)
    resolve_classes(ds)
    assert ds["class_names"] == [label_names[str(i)] for i in range(len(label_names))]


def test_btcv_reads_both_lists_of_dataset_0_json(tmp_path):
    names = {"0": "background", **{str(i): f"organ{i}" for i in range(1, 14)}}
    root = tmp_path / "data" / "BTCV"
    for k, case in enumerate(["0001", "0002", "0003", "0004"]):  # SwinUNETR's naming: img0001 / label0001
        save(root / "imagesTr" / f"img{case}.nii.gz", ct(k))
        save(root / "labelsTr" / f"label{case}.nii.gz", labels(14, k))
    entry = [{"image": f"imagesTr/img{c}.nii.gz", "label": f"labelsTr/label{c}.nii.gz"} for c in ("0001", "0002",
                                                                                                 "0003", "0004")]
    (root / "dataset_0.json").write_text(json.dumps({"labels": names, "training": entry[:3], "validation": entry[3:]}))
    ds = compose("btcv", tmp=tmp_path)
    cases = list_cases(ds)
    assert [c["case"] for c in cases] == ["label0001", "label0002", "label0003", "label0004"]
    assert [Path(c["image"]).name for c in cases] == ["img0001.nii.gz", "img0002.nii.gz", "img0003.nii.gz",
                                                      "img0004.nii.gz"]
    resolve_classes(ds)
    assert ds["num_classes"] == 14 and ds["class_names"][1] == "spleen" and ds["class_names"][-1] == "adrenal_gland_left"
    assert ds["preprocessing"]["window"] == [-175, 250] and ds["preprocessing"]["spacing"] == [1.5, 1.5, 2.0]


def test_amos22_keeps_ct_cases_from_training_and_validation(tmp_path):
    root = tmp_path / "data" / "amos22"
    names = {"0": "background", **{str(i): f"organ{i}" for i in range(1, 16)}}
    entries = {"training": [], "validation": []}
    for k, (case, split) in enumerate([("amos_0001", "Tr"), ("amos_0005", "Tr"), ("amos_0507", "Tr"),
                                       ("amos_0008", "Va"), ("amos_0410", "Va"), ("amos_0555", "Va")]):
        save(root / f"images{split}" / f"{case}.nii.gz", ct(k))
        save(root / f"labels{split}" / f"{case}.nii.gz", labels(16, k))
        entries["training" if split == "Tr" else "validation"].append(
            {"image": f"./images{split}/{case}.nii.gz", "label": f"./labels{split}/{case}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"labels": names, **entries}))
    ds = compose("amos22", tmp=tmp_path)
    cases = list_cases(ds)
    assert [c["case"] for c in cases] == ["amos_0001", "amos_0005", "amos_0008", "amos_0410"]  # MRI (>= 500) left out
    assert all(Path(c["image"]).parent.name in ("imagesTr", "imagesVa") for c in cases)
    resolve_classes(ds)
    assert ds["num_classes"] == 16 and ds["class_names"][14:] == ["urinary_bladder", "prostate_uterus"]


def test_kits23_case_folders(tmp_path):
    root = tmp_path / "data" / "kits23" / "dataset"
    for k in range(4):
        case = root / f"case_{k:05d}"
        save(case / "imaging.nii.gz", ct(k))
        save(case / "segmentation.nii.gz", labels(4, k))
        save(case / "instances" / "kidney_instance-1_annotation-1.nii.gz", (labels(4, k) == 1).astype(np.uint8))
    (root / "kits23.json").write_text("[]")  # stray files beside the case folders are ignored
    (root / "notes").mkdir()  # ... and so are folders that do not match case_*
    ds = compose("kits23", tmp=tmp_path)
    cases = list_cases(ds)
    assert [c["case"] for c in cases] == [f"case_{k:05d}" for k in range(4)]
    assert all(c["image"].endswith(f"{c['case']}/imaging.nii.gz") for c in cases)
    assert all(c["label"].endswith(f"{c['case']}/segmentation.nii.gz") for c in cases)
    resolve_classes(ds)
    assert ds["class_names"] == ["background", "kidney", "tumor", "cyst"] and ds["num_classes"] == 4
    (root / "case_00002" / "segmentation.nii.gz").unlink()
    with pytest.raises(CTBenchError, match="1 missing file.*case_00002/segmentation.nii.gz"):
        list_cases(ds)
    assert len(list_cases(ds, check_files=False)) == 4  # the integrity check reports it instead


# ------------------------------------------------------------------------------------------------ TotalSegmentator

DEFAULT_TS = ["spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
              "adrenal_gland_right", "adrenal_gland_left", "esophagus", "duodenum", "small_bowel", "colon",
              "urinary_bladder", "aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein"]
EXTRA_TS = ["brain", "vertebrae_L1"]  # present in the folder, not in the default class list


def totalseg_copy(root: Path, n: int = 4) -> None:
    """``sNNNN/ct.nii.gz`` and one binary mask per structure in ``sNNNN/segmentations/``."""
    for k in range(n):
        subject = root / f"s{k:04d}"
        save(subject / "ct.nii.gz", ct(k))
        merged = labels(len(DEFAULT_TS) + 1, k)
        for value, name in enumerate(DEFAULT_TS, start=1):
            save(subject / "segmentations" / f"{name}.nii.gz", (merged == value).astype(np.uint8))
        for name in EXTRA_TS:
            mask = np.zeros(SHAPE, np.uint8)
            mask[12:14, 12:14, 12:14] = 1
            save(subject / "segmentations" / f"{name}.nii.gz", mask)
    (root / "meta.csv").write_text("image_id;split\n")


def test_totalsegmentator_merges_masks_once_in_class_order(tmp_path):
    root = tmp_path / "data" / "Totalsegmentator_dataset_v201"
    totalseg_copy(root)
    ds = compose("totalsegmentator", tmp=tmp_path)
    assert ds["class_names"] == ["background", *DEFAULT_TS]
    cases = list_cases(ds)
    assert [c["case"] for c in cases] == ["s0000", "s0001", "s0002", "s0003"]
    assert all(c["image"] == str(root / c["case"] / "ct.nii.gz") for c in cases)
    merged_dir = Path(cases[0]["label"]).parent
    assert merged_dir.parent.name == "merged_labels" and merged_dir.is_relative_to(tmp_path / "data" / "cache")
    assert json.loads((merged_dir / "classes.json").read_text()) == ["background", *DEFAULT_TS]
    for k, case in enumerate(cases):
        merged = np.asarray(nib.load(case["label"]).dataobj)
        assert np.array_equal(merged, labels(len(DEFAULT_TS) + 1, k))  # value = index in class_names
        assert np.allclose(nib.load(case["label"]).affine, nib.load(case["image"]).affine)
    resolve_classes(ds)
    assert ds["num_classes"] == 18

    # cached: a second listing does not rewrite the merged maps
    stamp = Path(cases[0]["label"]).stat().st_mtime_ns
    assert list_cases(ds) == cases and Path(cases[0]["label"]).stat().st_mtime_ns == stamp

    # another class list: another folder, values follow the new order
    ds2 = compose("totalsegmentator", "dataset.class_names=[background,liver,brain,spleen]", tmp=tmp_path)
    cases2 = list_cases(ds2)
    assert Path(cases2[0]["label"]).parent != merged_dir
    merged = np.asarray(nib.load(cases2[0]["label"]).dataobj)
    original = labels(len(DEFAULT_TS) + 1, 0)
    assert np.array_equal(merged == 1, original == DEFAULT_TS.index("liver") + 1)
    assert np.array_equal(merged == 3, original == DEFAULT_TS.index("spleen") + 1)
    assert (merged == 2).sum() == 8  # brain

    # a mask rewritten on disk: merged again
    mask = root / "s0000" / "segmentations" / "spleen.nii.gz"
    save(mask, np.zeros(SHAPE, np.uint8))
    assert not (np.asarray(nib.load(list_cases(ds2)[0]["label"]).dataobj) == 3).any()

    # class_names=null: every structure, sorted by name
    ds3 = compose("totalsegmentator", "dataset.class_names=null", tmp=tmp_path)
    resolve_classes(ds3)
    assert ds3["class_names"] == ["background", *sorted(DEFAULT_TS + EXTRA_TS)]

    with pytest.raises(CTBenchError, match="'livre' is not a structure"):
        list_cases(compose("totalsegmentator", "dataset.class_names=[background,livre]", tmp=tmp_path))


@pytest.mark.slow
def test_totalsegmentator_preset_trains_one_epoch(tmp_path):
    """The real CLI on the fake TotalSegmentator copy: merge, integrity check, disk cache, train, test, report."""
    root = tmp_path / "ts"
    totalseg_copy(root, n=4)
    run = tmp_path / "run"
    ctbench("train", *TINY, "dataset=totalsegmentator", f"dataset.root={root}", "dataset.test_cases=1",
            "dataset.num_folds=2", "dataset.preprocessing.spacing=[4.0,4.0,4.0]", "trainer.max_epochs=1",
            f"paths.root_dir={tmp_path}", f"hydra.run.dir={run}", cwd=tmp_path)
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["dataset"] == "totalsegmentator" and summary["n_cases"] == 1
    assert set(summary["per_class"]) == set(DEFAULT_TS)
    cache = tmp_path / "data" / "cache" / "totalsegmentator"
    assert (cache / "splits.json").exists() and list((cache / "merged_labels").glob("*/s0000.nii.gz"))
    assert list((cache / "persistent").glob("*/key.json"))  # the preset caches on disk, keyed by its config


# ------------------------------------------------------------------------------------------------ DICOM

TS_DICOM = REAL / "totalseg-ct-dicom"


@pytest.fixture(scope="module")
def dicom_labels(tmp_path_factory) -> Path:
    """The real label map, named after the case id `ctbench convert` gives the series."""
    from ctbench.data.dicom import output_stem, read_dicom_series

    folder = tmp_path_factory.mktemp("dicom_labels")
    (series,) = read_dicom_series(TS_DICOM / "dicom")
    shutil.copyfile(TS_DICOM / "example_seg_dicom.nii.gz", folder / f"{output_stem(series, 1)}.nii.gz")
    return folder


def test_dicom_tree_converted_once_and_label_on_its_grid(tmp_path, dicom_labels, monkeypatch):
    from ctbench.data.integrity import check_cases

    ds = compose("dicom", f"dataset.dicom_dir={TS_DICOM / 'dicom'}", f"dataset.labels={dicom_labels}", tmp=tmp_path)
    (case,) = list_cases(ds)
    assert case["case"] == "001_Sx_CT_Body_3_0"  # the name `ctbench convert` writes (no SeriesNumber in this export)
    image = Path(case["image"])
    assert image == tmp_path / "data" / "cache" / "dicom" / "dicom_nifti" / "001_Sx_CT_Body_3_0.nii.gz"
    img = nib.load(image)
    assert img.shape == (512, 512, 20) and np.allclose(img.header.get_zooms(), (0.9765625, 0.9765625, 2.0))
    # the label map (TotalSegmentator's row order) is reoriented onto the converted image's grid ...
    assert check_cases([case], None) == []
    hu, lab = np.asarray(img.dataobj), np.asarray(nib.load(case["label"]).dataobj)
    assert hu[lab == 5].mean() == pytest.approx(89, abs=2)  # ... so the liver lands on liver (README: 89 HU)
    assert hu[lab == 1].mean() == pytest.approx(80, abs=2)  # spleen
    # the original label map would not pass the geometry check
    raw = {**case, "label": str(dicom_labels / "001_Sx_CT_Body_3_0.nii.gz")}
    assert "geometry differ" in check_cases([raw], None)[0].message

    # cached: a second listing reads no DICOM and rewrites nothing
    stamps = (image.stat().st_mtime_ns, Path(case["label"]).stat().st_mtime_ns)
    with monkeypatch.context() as patch:
        patch.setattr("ctbench.data.dicom.read_dicom_series", lambda *a, **k: pytest.fail("DICOM read again"))
        assert list_cases(ds) == [case]
    assert (image.stat().st_mtime_ns, Path(case["label"]).stat().st_mtime_ns) == stamps


@pytest.mark.slow
def test_dicom_series_folders_with_label_mapping(tmp_path):
    from ctbench.data.integrity import check_cases

    series = tmp_path / "exports" / "patient_a_ct"
    shutil.copytree(TS_DICOM / "dicom", series)
    (tmp_path / "exports" / "notes.txt").write_text("not a series folder")
    seg = tmp_path / "seg"
    seg.mkdir()
    shutil.copyfile(TS_DICOM / "example_seg_dicom.nii.gz", seg / "a.nii.gz")
    (seg / "mapping.json").write_text(json.dumps({"patient_a_ct": "a.nii.gz"}))
    ds = compose("dicom", f"dataset.series={tmp_path}/exports/*", f"dataset.label_mapping={seg / 'mapping.json'}",
                 tmp=tmp_path)
    (case,) = list_cases(ds)
    assert case["case"] == "patient_a_ct" and Path(case["image"]).name == "patient_a_ct.nii.gz"
    assert check_cases([case], None) == []

    # a rewritten slice changes the series' stamp: converted again
    before = Path(case["image"]).stat().st_mtime_ns
    first = sorted(series.iterdir())[0]
    first.write_bytes(first.read_bytes())
    assert list_cases(ds)[0] == case and Path(case["image"]).stat().st_mtime_ns != before


def test_dicom_config_errors(tmp_path, dicom_labels):
    with pytest.raises(CTBenchError, match="exactly one of dataset.dicom_dir"):
        list_cases(compose("dicom", f"dataset.labels={dicom_labels}", tmp=tmp_path))
    empty = tmp_path / "nolabels"
    empty.mkdir()
    with pytest.raises(CTBenchError, match="no DICOM series .* has a label map.*001_Sx_CT_Body_3_0"):
        list_cases(compose("dicom", f"dataset.dicom_dir={TS_DICOM / 'dicom'}", f"dataset.labels={empty}",
                           tmp=tmp_path))
