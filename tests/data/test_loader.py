"""The training loader: how many worker processes, and what the training step receives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from ctbench.data.datamodule import CTDataModule, batch_layout, loader_workers
from ctbench.errors import CTBenchError


def dataset_cfg(tmp, *overrides: str) -> dict:
    """The tiny phantom's ``dataset`` block (``debug=fast``), files under ``tmp``."""
    from omegaconf import OmegaConf

    from ctbench.config import compose

    cfg = compose("train", ["debug=fast", f"paths.root_dir={tmp}", *overrides])
    return OmegaConf.to_container(cfg.dataset, resolve=True)


def test_auto_workers_are_zero_on_cpu_and_one_per_spare_core_on_gpu(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert loader_workers("auto", on_gpu=False) == 0
    assert loader_workers("auto", on_gpu=True) == 8  # capped
    assert loader_workers("auto", on_gpu=True, devices=4) == 3  # 16 cores / 4 devices, one core for the step
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert loader_workers("auto", on_gpu=True) == 1
    assert loader_workers(3, on_gpu=False) == 3 and loader_workers("2", on_gpu=True) == 2


def test_bad_worker_setting_names_the_key():
    with pytest.raises(CTBenchError, match=r"dataset.num_workers='many': give a number of processes or auto"):
        loader_workers("many", on_gpu=False)


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_training_batches_are_plain_tensors_with_integer_labels(tmp_path, cache):
    """MetaTensor dispatch and float labels cost ~5 % and ~3.5 % of a CPU step (docs/performance.md)."""
    dm = CTDataModule(dataset_cfg(tmp_path, f"dataset.cache={cache}"), dims=3, fold=0, cache_dir=tmp_path / "c")
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    image, label = batch["image"], batch["label"]
    assert type(image) is torch.Tensor and type(label) is torch.Tensor
    assert not isinstance(image, MetaTensor) and image.dtype == torch.float32 and label.dtype == torch.uint8
    assert tuple(image.shape) == (2, 1, 16, 16, 16) == tuple(label.shape)  # dataset.batch_size_3d=2 patches
    assert set(label.unique().tolist()) <= set(range(5)) and label.max() > 0  # foreground-biased crops


@pytest.mark.parametrize(("batch", "per_volume", "layout"), [(2, 8, (1, 2)), (8, 8, (1, 8)), (16, 4, (4, 4)),
                                                           (8, 3, (2, 3)), (1, 1, (1, 1))])
def test_a_batch_holds_batch_size_patches_not_a_volume_s_crops(batch, per_volume, layout):
    assert batch_layout(batch, per_volume) == layout  # (volumes, patches each)


def test_the_3d_batch_size_is_the_patches_per_step_when_a_volume_gives_more(tmp_path):
    """``batch_size_3d: 2`` with ``samples_per_volume: 8`` (phantom_study's) trains on 2 patches, not 8."""
    dm = CTDataModule(dataset_cfg(tmp_path, "dataset.samples_per_volume=8"), dims=3, fold=0, cache_dir=tmp_path / "c")
    dm.setup()
    assert next(iter(dm.train_dataloader()))["image"].shape[0] == 2
    with pytest.raises(CTBenchError, match="must be >= 1"):
        batch_layout(0, 8)


@pytest.mark.parametrize(("n", "world"), [(16, 2), (15, 2), (7, 4), (3, 8), (1, 2)])
def test_ddp_shards_cover_every_case_with_equal_lengths(n, world):
    """Each rank caches its shard only; equal lengths keep the ranks' step counts equal (no DDP hang)."""
    from ctbench.data.datamodule import rank_shard

    names = [f"c{i}" for i in range(n)]
    shards = [rank_shard(names, rank, world) for rank in range(world)]
    assert {len(s) for s in shards} == {-(-n // world)}
    assert set().union(*shards) == set(names)
    assert sum(len(s) for s in shards) - n < world  # padding: fewer than one extra case per rank
    if n % world == 0:
        assert sorted(sum(shards, [])) == sorted(names)  # a true partition


@pytest.mark.parametrize("border_on", ["background", "other_objects"])
def test_unet_weighted_batches_carry_the_cached_weight_map(tmp_path, border_on):
    """The weight map is computed once per case on the whole volume and cropped with the label: each
    patch's ``weight`` equals the map of the whole (padded) label volume at the same window, with the loss's
    ``border_on`` (the two differ on these organs)."""
    from ctbench.data.weight_maps import unet_weight_map

    params = {"w0": 10.0, "sigma": 5.0, "class_balance": True, "per_slice": False, "border_on": border_on}
    dm = CTDataModule(dataset_cfg(tmp_path, "dataset.samples_per_volume=1"), dims=3, fold=0,
                      cache_dir=tmp_path / "c", weight_map=params)
    dm.setup()
    loader = dm.train_dataloader()
    cached = loader.dataset._cache[0]  # the deterministic part: whole padded volume + its map
    whole = np.asarray(cached["label"][0])
    np.testing.assert_allclose(np.asarray(cached["weight"][0]), unet_weight_map(whole, **params), rtol=1e-6)
    other = "other_objects" if border_on == "background" else "background"
    assert not np.allclose(unet_weight_map(whole, **{**params, "border_on": other}), cached["weight"][0])
    batch = next(iter(loader))
    assert batch["weight"].shape == batch["label"].shape and batch["weight"].dtype == torch.float32
    assert float(batch["weight"].min()) > 0  # class balancing is positive everywhere


def test_nnunet_multichannel_cases_reach_the_batches_as_channels(tmp_path):
    """nnU-Net v2 ``CASE_0000 ... CASE_0001`` files are stacked as channels through preprocessing and the
    loader; ``in_channels`` comes from ``dataset.json``. Channel 1 is channel 0 + 100 HU, so after the
    abdomen window ([-160, 240] HU to [0, 1]) it is 0.25 above channel 0 wherever both are inside the window."""
    import json

    import nibabel as nib

    from ctbench.data.datasets import resolve_classes

    root = tmp_path / "Dataset001_Two"
    rng = np.random.default_rng(0)
    for i in range(4):
        ct = np.full((16, 16, 16), -1000, np.int16)
        ct[2:14, 2:14, 2:14] = (40 + rng.normal(0, 10, (12, 12, 12))).astype(np.int16)
        label = np.zeros((16, 16, 16), np.uint8)
        label[4:10, 4:10, 4:10] = 1
        for k, image in enumerate([ct, ct + 100]):
            (root / "imagesTr").mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(image, np.diag([4.0, 4.0, 4.0, 1])), str(root / "imagesTr" / f"c{i}_{k:04d}.nii.gz"))
        (root / "labelsTr").mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(label, np.diag([4.0, 4.0, 4.0, 1])), str(root / "labelsTr" / f"c{i}.nii.gz"))
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT", "1": "CT_plus_100"},
                                                   "labels": {"background": 0, "liver": 1}, "file_ending": ".nii.gz"}))
    dataset = dataset_cfg(tmp_path, "dataset=msd", f"dataset.root={root}", "dataset.test_cases=1")
    resolve_classes(dataset)
    assert dataset["in_channels"] == 2 and dataset["num_classes"] == 2
    dm = CTDataModule(dataset, dims=3, fold=0, cache_dir=tmp_path / "c")
    dm.prepare_data()  # the integrity check reads every channel
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert tuple(batch["image"].shape) == (2, 2, 16, 16, 16) and tuple(batch["label"].shape) == (2, 1, 16, 16, 16)
    volume = dm.eval_dataset("val")[0]["image"]
    assert volume.shape[0] == 2
    inside = (volume[0] > 0.2) & (volume[1] < 0.95)
    assert int(inside.sum()) > 50
    np.testing.assert_allclose(np.asarray(volume[1] - volume[0])[np.asarray(inside)], 0.25, atol=1e-5)
