"""Case lists (readers named by ``_target_``: MSD / nnU-Net v2, NIfTI globs), path safety, the voxel cap and
splits (ctbench's own and nnU-Net's ``splits_final.json``)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctbench.data.datasets import list_cases, resolve_classes
from ctbench.data.integrity import check_case
from ctbench.data.readers.msd import msd_labels
from ctbench.data.readers.nifti import case_id
from ctbench.data.splits import dataset_splits, load_or_make_splits, make_splits, select_fold
from ctbench.data.voxel_budget import check_voxel_budget
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


# ------------------------------------------------------------------------------------------------ readers


def _nifti(path, shape=(8, 8, 4), spacing=(4.0, 4.0, 4.0), value=0, dtype=np.int16):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.full(shape, value, dtype)
    data[(0,) * len(shape)] = value + 1  # not constant
    nib.save(nib.Nifti1Image(data, np.diag([*spacing, 1.0])), str(path))
    return path


def test_unknown_reader_target_is_one_line():
    for target in ("ctbench.data.readers.msd.MSDReaderX", "os.system", "no_such_module.Reader"):
        with pytest.raises(CTBenchError, match=f"unknown dataset reader '{target}'") as err:
            list_cases({"name": "t", "reader": {"_target_": target}, "root": "."})
        assert err.value.exit_code == 2 and "\n" not in str(err.value)
    with pytest.raises(CTBenchError, match="names no reader"):
        list_cases({"name": "t", "root": "."})


def test_symlinked_images_folder_inside_the_root_is_allowed(tmp_path):
    """Issue 12 row 10: imagesTr/ a symlink to a folder elsewhere (a shared store) was refused as outside."""
    store = tmp_path / "store"
    for case in ("a", "b"):
        _touch(store / f"{case}.nii.gz")
        _touch(tmp_path / "Task" / "labelsTr" / f"{case}.nii.gz")
    (tmp_path / "Task" / "imagesTr").symlink_to(store, target_is_directory=True)
    (tmp_path / "Task" / "dataset.json").write_text(json.dumps(
        {"labels": {"0": "background", "1": "liver"},
         "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in ("a", "b")]}))
    cases = list_cases(msd(tmp_path / "Task"))
    assert [c["case"] for c in cases] == ["a", "b"]
    assert cases[0]["image"] == str(tmp_path / "Task" / "imagesTr" / "a.nii.gz")  # the path as listed


def test_duplicate_case_ids_are_refused_with_every_duplicate(tmp_path):
    """Issue 12 row 8: two entries with one case id collapsed silently into one case."""
    entries = []
    for folder, case in [("Tr", "a"), ("Tr", "b"), ("Va", "a"), ("Va", "b"), ("Va", "c")]:
        _touch(tmp_path / f"images{folder}" / f"{case}.nii.gz")
        _touch(tmp_path / f"labels{folder}" / f"{case}.nii.gz")
        entries.append({"image": f"./images{folder}/{case}.nii.gz", "label": f"./labels{folder}/{case}.nii.gz"})
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"labels": {"0": "background", "1": "liver"}, "training": entries[:2], "validation": entries[2:]}))
    assert len(list_cases(msd(tmp_path))) == 2  # the training list alone is fine
    with pytest.raises(CTBenchError, match=r"same case id more than once: a \(x2\), b \(x2\);"):
        list_cases(msd(tmp_path, lists=["training", "validation"]))


def test_nnunet_multichannel_cases_and_in_channels(tmp_path):
    for case in ("p1", "p2"):
        for k in range(3):
            _touch(tmp_path / "imagesTr" / f"{case}_{k:04d}.nii.gz")
        _touch(tmp_path / "labelsTr" / f"{case}.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT", "1": "CT_arterial", "2": "CT_venous"}, "labels": {"background": 0, "liver": 1},
         "file_ending": ".nii.gz"}))
    cases = list_cases(msd(tmp_path))
    assert cases[1]["image"] == [str(tmp_path / "imagesTr" / f"p2_{k:04d}.nii.gz") for k in range(3)]
    dataset = msd(tmp_path, class_names=None, in_channels=1)
    resolve_classes(dataset)
    assert dataset["in_channels"] == 3 and dataset["class_names"] == ["background", "liver"]
    assert dataset["num_classes"] == 2
    (tmp_path / "imagesTr" / "p2_0002.nii.gz").unlink()
    with pytest.raises(CTBenchError, match="lists 1 missing file.*p2_0002.nii.gz"):
        list_cases(msd(tmp_path))


def test_region_based_labels_are_refused(tmp_path):
    _touch(tmp_path / "imagesTr" / "b_0000.nii.gz")
    _touch(tmp_path / "labelsTr" / "b.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": {"background": 0, "whole_tumor": [1, 2, 3], "core": [2, 3],
                                                  "enhancing": 3}, "regions_class_order": [1, 2, 3]}))
    for call in (lambda: list_cases(msd(tmp_path)), lambda: resolve_classes(msd(tmp_path, class_names=None))):
        with pytest.raises(CTBenchError, match=r"region-based labels \(whole_tumor, core: lists of values\)"):
            call()


# ------------------------------------------------------------------------------------------------ nifti pairing


def test_nifti_case_ids_keep_dots():
    assert case_id("/d/case.v2.nii.gz") == "case.v2" and case_id("a.b.nii") == "a.b" and case_id("x.mha") == "x"


def test_nifti_pairs_by_case_id_and_lists_unmatched_files(tmp_path, capsys):
    """Issue 12 row 7: images a,b,c with labels a,c,d were paired (b,c) and (c,d) by sorted position."""
    from ctbench.cli import main

    for case in ("a.v2", "b", "c"):
        _nifti(tmp_path / "img" / f"{case}.nii.gz")
    for case in ("a.v2", "c", "d"):
        _nifti(tmp_path / "lab" / f"{case}.nii.gz")
    globs = ["dataset=nifti", f"dataset.images={tmp_path}/img/*.nii.gz", f"dataset.labels={tmp_path}/lab/*.nii.gz"]
    assert main(["check-data", *globs, f"paths.root_dir={tmp_path}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ctbench: error: dataset=nifti pairs files by case id (file name without .nii.gz); 1 image(s) "
                   "without a label: b.nii.gz; 1 label(s) without an image: d.nii.gz: rename or remove them"]
    (tmp_path / "img" / "b.nii.gz").unlink()
    (tmp_path / "lab" / "d.nii.gz").unlink()
    _nifti(tmp_path / "img" / "0_first.nii.gz")  # sorts first among images, last would be its label
    _nifti(tmp_path / "lab" / "0_first.nii.gz")
    cases = list_cases({"name": "n", "reader": {"_target_": "ctbench.data.readers.nifti.NiftiGlobReader"},
                        "images": f"{tmp_path}/img/*.nii.gz", "labels": f"{tmp_path}/lab/*.nii.gz"})
    assert [(c["case"], Path(c["image"]).name, Path(c["label"]).name) for c in cases] == [
        ("0_first", "0_first.nii.gz", "0_first.nii.gz"), ("a.v2", "a.v2.nii.gz", "a.v2.nii.gz"),
        ("c", "c.nii.gz", "c.nii.gz")]


def test_nifti_images_with_the_nnunet_channel_suffix_pair_with_plain_labels(tmp_path):
    for case in ("a", "b"):
        _nifti(tmp_path / "img" / f"{case}_0000.nii.gz")
        _nifti(tmp_path / "lab" / f"{case}.nii.gz")
    cases = list_cases({"name": "n", "reader": {"_target_": "ctbench.data.readers.nifti.NiftiGlobReader"},
                        "images": f"{tmp_path}/img/*", "labels": f"{tmp_path}/lab/*"})
    assert [c["case"] for c in cases] == ["a", "b"] and cases[0]["image"].endswith("a_0000.nii.gz")


# ------------------------------------------------------------------------------------------------ voxel cap


def test_voxel_cap_counts_voxels_after_resampling(tmp_path):
    """16^3 voxels of 4 mm resampled to 1 mm are 64^3 = 262144 voxels; 10 voxels of 1.5 mm at 1 mm are 15."""
    path = _nifti(tmp_path / "a.nii.gz", (16, 16, 16), (4.0, 4.0, 4.0))
    check_voxel_budget(path, [1.0, 1.0, 1.0], 262144)
    with pytest.raises(CTBenchError) as err:
        check_voxel_budget(path, [1.0, 1.0, 1.0], 262143)
    assert str(err.value) == ("a.nii.gz: shape 16 x 16 x 16 at spacing 4 x 4 x 4 mm is 4.1e+03 voxels (2.62e+05 at "
                              "the target spacing 1 x 1 x 1 mm), over the cap of 2.62e+05: check the file's header, "
                              "or raise the cap with dataset.max_voxels=N")
    odd = _nifti(tmp_path / "b.nii.gz", (10, 10, 10), (1.5, 1.5, 1.5))
    check_voxel_budget(odd, [1.0, 1.0, 1.0], 15 ** 3)
    with pytest.raises(CTBenchError, match="is 1e\\+03 voxels \\(3.38e\\+03 at the target"):
        check_voxel_budget(odd, [1.0, 1.0, 1.0], 15 ** 3 - 1)
    check_voxel_budget(odd, None, 1000)  # no target spacing: the stored count alone
    with pytest.raises(CTBenchError, match="1e\\+03 voxels, over the cap of 999"):
        check_voxel_budget(odd, None, 999)


def test_huge_header_dims_are_refused_before_any_voxel_is_read(tmp_path):
    """A 30000^3 header on a 1 kB file: refused from the header, never allocated (check-data and training)."""
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.int16)
    header.set_zooms((1.0, 1.0, 1.0))
    raw = header.binaryblock + b"\0" * 4 + b"\1" * 1000
    compressed, plain = tmp_path / "huge.nii.gz", tmp_path / "huge.nii"
    compressed.write_bytes(gzip.compress(raw))
    plain.write_bytes(raw)
    label = _nifti(tmp_path / "huge_label.nii.gz")
    problems = check_case({"case": "huge", "image": str(compressed), "label": str(label)}, None,
                          target_spacing=[1.5, 1.5, 1.5])
    assert [p.message for p in problems if p.file == str(compressed)] == [
        "shape 30000 x 30000 x 30000 at spacing 1 x 1 x 1 mm is 2.7e+13 voxels (8e+12 at the target spacing 1.5 x "
        "1.5 x 1.5 mm), over the cap of 1e+09: check the file's header, or raise the cap with dataset.max_voxels=N"]
    # uncompressed: the header promises 2 * 2.7e13 bytes after byte 352, the file holds 1352
    with pytest.raises(CTBenchError, match="huge.nii: truncated: its header describes 54000000000352 bytes, "
                                           "the file holds 1352: export it again"):
        check_voxel_budget(plain, None, 10 ** 15)


def test_zero_and_non_finite_spacing_are_refused(tmp_path):
    img = nib.Nifti1Image(np.arange(8, dtype=np.int16).reshape(2, 2, 2), None)
    img.set_sform(np.diag([1.0, 0.0, 1.0, 1.0]), code=1)  # a degenerate sform: the y axis has no length
    path = tmp_path / "z.nii.gz"
    nib.save(img, str(path))
    with pytest.raises(CTBenchError, match=r"z.nii.gz: voxel spacing \(1 x 0 x 1\) mm in its header is not positive"):
        check_voxel_budget(path, [1.0, 1.0, 1.0])


# ------------------------------------------------------------------------------------------------ nnU-Net splits


def test_nnunet_splits_are_the_folds_of_splits_final_json(tmp_path):
    """``dataset.splits=nnunet``: the same train/val cases per fold as a splits_final.json written by hand;
    cases in no fold are the test set."""
    cases = [f"liver_{i}" for i in range(8)]
    folds = [{"train": ["liver_2", "liver_3", "liver_4", "liver_5"], "val": ["liver_0", "liver_1"]},
             {"train": ["liver_0", "liver_1", "liver_4", "liver_5"], "val": ["liver_2", "liver_3"]},
             {"train": ["liver_0", "liver_1", "liver_2", "liver_3"], "val": ["liver_4", "liver_5"]}]
    (tmp_path / "splits_final.json").write_text(json.dumps(folds))
    dataset = {"splits": "nnunet", "root": str(tmp_path), "test_cases": 1, "num_folds": 5}
    splits = dataset_splits(dataset, cases, tmp_path / "cache")
    for k, fold in enumerate(folds):
        assert select_fold(splits, k) == {**fold, "test": ["liver_6", "liver_7"]}
    assert not (tmp_path / "cache" / "splits.json").exists()  # nothing of ctbench's own is made


def test_nnunet_splits_covering_every_case_test_each_fold_on_its_val(tmp_path):
    folds = [{"train": ["b", "c"], "val": ["a"]}, {"train": ["a", "c"], "val": ["b"]}]
    path = tmp_path / "plans" / "splits_final.json"
    path.parent.mkdir()
    path.write_text(json.dumps(folds))
    dataset = {"splits": "nnunet", "splits_file": str(path), "root": str(tmp_path)}
    splits = dataset_splits(dataset, ["a", "b", "c"], tmp_path)
    assert select_fold(splits, 1) == {"train": ["a", "c"], "val": ["b"], "test": ["b"]}
    with pytest.raises(CTBenchError, match=r"names 1 case\(s\) this dataset does not have \(e.g. c\)"):
        dataset_splits(dataset, ["a", "b"], tmp_path)
    with pytest.raises(CTBenchError, match="dataset.splits=nnunet: .*splits_final.json does not exist"):
        dataset_splits({"splits": "nnunet", "root": str(tmp_path / "nope")}, ["a"], tmp_path)
    with pytest.raises(CTBenchError, match="unknown dataset.splits=nnUnet"):
        dataset_splits({"splits": "nnUnet"}, ["a"], tmp_path)


@pytest.mark.slow
def test_two_channel_nnunet_folder_trains_and_predicts_through_the_cli(tmp_path):
    """The whole path for nnU-Net's ``CASE_0000``/``CASE_0001`` (about 30 s: the one end-to-end run with more than
    one input channel): ``in_channels`` from ``dataset.json`` reaches the model, training, the test report
    and ``ctbench predict`` on the two files of a case."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from cli_helpers import TINY, ctbench, read_summary

    root = tmp_path / "Dataset001_Two"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng, affine = np.random.default_rng(0), np.diag([10.0, 10.0, 10.0, 1])
    for i in range(4):
        ct = np.full((24, 24, 24), -1000, np.int16)
        ct[2:22, 2:22, 2:22] = (40 + rng.normal(0, 10, (20, 20, 20))).astype(np.int16)
        label = np.zeros((24, 24, 24), np.uint8)
        label[6:14, 6:14, 6:14] = 1
        ct[label > 0] += 60
        for k, image in enumerate([ct, ct + 100]):
            nib.save(nib.Nifti1Image(image, affine), str(root / "imagesTr" / f"c{i}_{k:04d}.nii.gz"))
        nib.save(nib.Nifti1Image(label, affine), str(root / "labelsTr" / f"c{i}.nii.gz"))
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT", "1": "CT_late"},
                                                   "labels": {"background": 0, "liver": 1}, "file_ending": ".nii.gz"}))
    run = tmp_path / "run"
    ctbench("train", *TINY, "dataset=msd", f"dataset.root={root}", "dataset.test_cases=1", "trainer.max_epochs=1",
            f"hydra.run.dir={run}", cwd=tmp_path)
    resolved = (run / "resolved_config.yaml").read_text()
    assert resolved.count("in_channels: 2") == 2  # dataset and model
    assert read_summary(run)["n_cases"] == 1
    (tmp_path / "case").mkdir()
    for k in range(2):
        shutil.copy(root / "imagesTr" / f"c0_{k:04d}.nii.gz", tmp_path / "case")
    ctbench("predict", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"input={tmp_path / 'case'}",
            f"output_dir={tmp_path / 'masks'}", f"hydra.run.dir={tmp_path / 'predict'}", cwd=tmp_path)
    mask = nib.load(str(tmp_path / "masks" / "c0.nii.gz"))
    assert mask.shape == (24, 24, 24) and np.allclose(mask.affine, affine)
