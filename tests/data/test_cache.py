"""Disk cache (``dataset.cache=disk``): keyed by the preprocessing config, so a changed config never
reuses a stale cache, and whole volumes keep their geometry when read back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ctbench.data.datamodule import CTDataModule, item_hash


def dataset_cfg(tmp: Path, *overrides: str) -> dict:
    """The tiny phantom's ``dataset`` block (``debug=fast``) with a disk cache, files under ``tmp``."""
    from omegaconf import OmegaConf

    from ctbench.config import compose

    cfg = compose("train", ["debug=fast", f"paths.root_dir={tmp}", "dataset.cache=disk", *overrides])
    return OmegaConf.to_container(cfg.dataset, resolve=True)


def module(tmp: Path, *overrides: str) -> CTDataModule:
    dm = CTDataModule(dataset_cfg(tmp, *overrides), dims=3, fold=0, cache_dir=tmp / "cache")
    dm.setup()
    return dm


def one_epoch(dm: CTDataModule) -> Path:
    """Iterate the training loader once; the folder its disk cache used."""
    loader = dm.train_dataloader()
    for _ in loader:
        pass
    return Path(loader.dataset.cache_dir)


def files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.pt")}


@pytest.mark.slow
def test_changed_spacing_gets_a_new_cache_folder_same_config_reuses_it(tmp_path):
    first = one_epoch(module(tmp_path))
    written = files(first)
    assert first.parent == tmp_path / "cache" / "persistent" and len(written) == 2  # 2 training cases
    key = json.loads((first / "key.json").read_text())
    assert key["preprocessing"]["spacing"] == [10.0, 10.0, 10.0] and key["role"]["chain"] == "train"

    again = one_epoch(module(tmp_path))  # same config: same folder, nothing preprocessed again
    assert again == first and files(again) == written

    finer = one_epoch(module(tmp_path, "dataset.preprocessing.spacing=[8.0,8.0,8.0]"))
    assert finer != first and len(files(finer)) == 2 and files(first) == written
    assert json.loads((finer / "key.json").read_text())["preprocessing"]["spacing"] == [8.0, 8.0, 8.0]

    # whatever the cached part depends on changes the key: the other preprocessing entries, the patch size
    # (padding), the z-score statistics
    role = {"chain": "train", "patch": [16, 16, 16], "num_classes": 5}
    assert module(tmp_path).persistent_dir(role) == first
    for override in ("dataset.preprocessing.window=liver", "dataset.preprocessing.orientation=LPS",
                     "dataset.preprocessing.interpolation=bspline", "dataset.preprocessing.crop_foreground=false"):
        assert module(tmp_path, override).persistent_dir(role) != first, override
    assert one_epoch(module(tmp_path, "dataset.patch_size_3d=[32,32,32]")) != first
    zscored = module(tmp_path, "dataset.preprocessing.normalize=zscore")
    assert zscored.zscore is not None
    assert json.loads((one_epoch(zscored) / "key.json").read_text())["zscore"] == pytest.approx(list(zscored.zscore))


def test_training_and_whole_volume_caches_are_apart_and_keep_geometry(tmp_path):
    dm = module(tmp_path)
    train_dir = one_epoch(dm)
    val = dm.eval_dataset("val")
    assert Path(val.cache_dir) != train_dir  # a case in one fold's val is in another fold's train
    first = val[0]
    reread = module(tmp_path).eval_dataset("val")[0]  # from the disk cache this time
    assert hasattr(reread["image"], "affine")  # MetaTensor: predictions can be mapped back to the file
    assert (reread["image"].affine == first["image"].affine).all()
    assert (reread["image"] == first["image"]).all() and "label_cls_indices" not in reread


def test_a_file_rewritten_in_place_is_preprocessed_again(tmp_path):
    dm = module(tmp_path)
    case = dm.cases[dm.split["train"][0]]
    item = {**case, "source_image": case["image"], "source_label": case["label"]}
    before = item_hash(item)
    assert item_hash(dict(item)) == before
    path = Path(case["label"])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert item_hash(item) != before  # same bytes, new modification time: preprocessed again


def test_zscore_statistics_follow_the_training_labels(tmp_path):
    dm = module(tmp_path, "dataset.preprocessing.normalize=zscore")
    stats = tmp_path / "cache" / "zscore_fold0.json"
    stored = json.loads(stats.read_text())
    assert stored["key"] and dm.zscore == (stored["mean"], stored["std"])
    stats.write_text(json.dumps({**stored, "key": "other labels", "mean": 12345.0}))
    assert module(tmp_path, "dataset.preprocessing.normalize=zscore").zscore[0] == pytest.approx(stored["mean"])
