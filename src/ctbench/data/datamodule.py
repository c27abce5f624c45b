"""Lightning DataModule: case list -> split -> cached MONAI datasets -> loaders.

Training yields class-balanced patches (3D) or axial slices (2D); validation and test yield whole
preprocessed volumes (batch size 1) whose MetaTensor geometry lets predictions be mapped back to
the original files.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from monai.data import CacheDataset, DataLoader, Dataset, list_data_collate
from torch.utils.data import DistributedSampler, Sampler

from ctbench.data.datasets import list_cases
from ctbench.data.random_state import ReplayingLoader, capture, rank_state, restore, seed_rank
from ctbench.data.readers.base import image_files
from ctbench.data.splits import dataset_splits, select_fold
from ctbench.data.transforms import eval_chain, foreground_statistics, train_chain, window_bounds
from ctbench.errors import CTBenchError

#: bump when the cached objects change shape, so that older disk caches are never read
CACHE_FORMAT = 3  # 3: integer (uint8) training labels


def _plain(value: Any) -> Any:
    """A config node as plain JSON-able Python (DictConfig/ListConfig resolved)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value


def cache_key(pre: Mapping[str, Any], zscore: tuple[float, float] | None, role: Mapping[str, Any]) -> dict[str, Any]:
    """What the cached (deterministic) part of a transform chain depends on: the preprocessing block, the
    z-score statistics, the chain (``train``: patch padding and class indices; ``eval``: whole volumes),
    the MONAI version and the cache format. Its SHA-1 names the disk-cache folder."""
    import monai

    return {"preprocessing": _plain(pre), "zscore": list(zscore) if zscore else None, "role": _plain(dict(role)),
            "monai": monai.__version__, "format": CACHE_FORMAT}


def _sha1(data: Any) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def item_hash(item: Mapping[str, Any]) -> bytes:
    """Cache-file name of one case: its entries plus the size and modification time of its files, so a
    file rewritten in place is preprocessed again (module level: DataLoader workers pickle it)."""
    stamps = {}
    for key in ("image", "label"):
        path = Path(str(item.get(key, "")))
        if path.is_file():
            st = path.stat()
            stamps[key] = [st.st_size, st.st_mtime_ns]
    return _sha1({"item": {k: str(v) for k, v in item.items()}, "stamps": stamps}).encode()


def by_dims(dataset: Mapping[str, Any], key: str, dims: int) -> Any:
    """``dataset[key + "_3d"]`` or ``dataset[key + "_2d"]``: patch and batch sizes differ by dimensionality."""
    return dataset[f"{key}_{dims}d"]


def batch_layout(batch_size: int, samples_per_volume: int) -> tuple[int, int]:
    """``(volumes, patches per volume)`` of a training batch of ``batch_size`` patches.

    MONAI's random crops give ``num_samples`` patches per loaded volume and the ``DataLoader`` batches
    volumes, so a batch holds volumes x patches; ``dataset.batch_size_Nd`` counts patches. A volume gives
    ``samples_per_volume`` patches, at most ``batch_size`` (``batch_size_3d: 2`` is 2 patches, not one volume's 8).
    """
    if batch_size < 1 or samples_per_volume < 1:
        raise CTBenchError(f"dataset batch size {batch_size} and samples_per_volume {samples_per_volume} must be >= 1")
    per_volume = min(samples_per_volume, batch_size)
    return max(1, batch_size // per_volume), per_volume


def loader_workers(setting: int | str, on_gpu: bool, devices: int = 1) -> int:
    """Loader worker processes for ``dataset.num_workers`` (an int, or ``auto``).

    ``auto`` is 0 on CPU: there the patches come from the in-memory cache at >200/s in the main
    process, 4x faster than through a worker (which pickles every batch across processes) and >100x
    what a 3D network consumes, and a worker process competes with the compute threads for the cores.
    On a GPU the step is short and augmentation must overlap it: one worker per spare core of each
    device's share, at most 8.
    """
    if str(setting) != "auto":
        try:
            return max(0, int(setting))
        except ValueError:
            raise CTBenchError(f"dataset.num_workers={setting!r}: give a number of processes or auto") from None
    if not on_gpu:
        return 0
    return max(1, min(8, (os.cpu_count() or 2) // max(1, devices) - 1))


def rank_shard(names: list[str], rank: int, world_size: int) -> list[str]:
    """The training cases one DDP rank caches and samples: every ``world_size``-th name from ``rank``, padded by
    wrapping around to ``ceil(len(names) / world_size)`` so every rank runs the same number of steps (as
    ``DistributedSampler`` pads); the shards together hold every case."""
    size = -(-len(names) // world_size)
    padded = (names * (1 + size * world_size // max(1, len(names))))[: size * world_size]
    return padded[rank::world_size]


class VolumeDraws(DistributedSampler):
    """``num_samples`` training volumes an epoch, drawn with replacement from ``(seed, epoch)``: an epoch of a
    fixed length whatever the number of cases, as nnU-Net's 250 iterations. A ``DistributedSampler`` (of one
    replica: under DDP each rank draws from its own shard) so that Lightning leaves it in place and sets its
    epoch, which makes the draws of a resumed epoch the interrupted run's."""

    def __init__(self, dataset: Dataset, num_samples: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed)
        self.num_samples = self.total_size = int(num_samples)

    def __iter__(self):
        import torch

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randint(len(self.dataset), (self.num_samples,), generator=generator).tolist())


def volumes_per_epoch(dataset: Mapping[str, Any], world_size: int) -> int | None:
    """``dataset.volumes_per_epoch`` (None: each training case once an epoch) split over ``world_size`` ranks."""
    value = dataset.get("volumes_per_epoch")
    if value is None:
        return None
    try:
        total = int(value)
    except (TypeError, ValueError):
        total = 0
    if total < 1 or str(value) != str(total):
        raise CTBenchError(f"dataset.volumes_per_epoch={value!r}: give a whole number of volumes >= 1, or null for "
                           "each training case once an epoch")
    return -(-total // world_size)


class CTDataModule(pl.LightningDataModule):
    """Data for one run.

    Args:
        dataset: the composed ``dataset`` config.
        dims: 2 (axial slices) or 3 (volumes).
        fold: which train/val fold of the stored splits to use.
        cache_dir: where ``splits.json`` and normalisation statistics live for this dataset.
        size_divisor: every training patch side must be a multiple of it (the model's total stride).
        seed: seed of the random patch sampling (reproducible runs).
        on_gpu: whether the model trains on a GPU (``dataset.num_workers=auto``, :func:`loader_workers`).
        devices: devices per node, each with its own loader.
        weight_map: the ``unet_weighted`` loss's parameters: training batches then carry each patch's
            cached U-Net weight map as ``weight`` (:func:`~ctbench.data.transforms.train_chain`).
        augment: the ``augment`` config group, applied to every training patch
            (:func:`~ctbench.data.transforms.augmentation`); None: no augmentation.

    ``dataset.crop_ratios`` (optional): how often a training patch is centred on each class.
    ``dataset.volumes_per_epoch`` (optional): volumes drawn an epoch (:class:`VolumeDraws`); None: each once.
    """

    def __init__(self, dataset: Mapping[str, Any], dims: int, fold: int, cache_dir: str | Path,
                 size_divisor: int = 1, seed: int = 0, on_gpu: bool = False, devices: int = 1,
                 weight_map: Mapping[str, Any] | None = None, augment: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg, self.dims, self.fold, self.seed = dataset, dims, fold, seed
        self.weight_map = dict(weight_map) if weight_map is not None else None
        self.augment = _plain(augment) or {}
        ratios = dataset.get("crop_ratios")
        self.crop_ratios = None if ratios is None else [float(r) for r in ratios]
        if self.crop_ratios is not None and (len(self.crop_ratios) != int(dataset["num_classes"])
                                             or min(self.crop_ratios) < 0 or sum(self.crop_ratios) <= 0):
            raise CTBenchError(f"dataset.crop_ratios {self.crop_ratios}: give one weight >= 0 per class "
                               f"({dataset['num_classes']}, background first), not all 0")
        volumes_per_epoch(dataset, 1)  # a bad value stops here, before any volume is cached
        self.on_gpu = on_gpu
        self.num_workers = loader_workers(dataset.get("num_workers", "auto"), on_gpu, devices)
        self.cache_dir = Path(cache_dir)
        self.patch = list(by_dims(dataset, "patch_size", dims))
        self.batch_size = int(by_dims(dataset, "batch_size", dims))
        bad = [p for p in self.patch if p % size_divisor]
        if bad:
            raise CTBenchError(f"patch size {self.patch} is not a multiple of {size_divisor}, the model's total stride: "
                               f"set dataset.patch_size_{dims}d to multiples of {size_divisor}")
        self.split: dict[str, list[str]] = {}
        self.cases: dict[str, dict[str, Any]] = {}
        self.zscore: tuple[float, float] | None = None
        self.train_chain: Any = None
        self.train_loader: ReplayingLoader | None = None
        self.resumed_random_state: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the training stream's random state (:mod:`ctbench.data.random_state`);
        under DDP every rank's (each rank calls this when Lightning saves, rank 0 writes the file)."""
        import torch.distributed as dist

        if self.train_chain is None:
            return {}
        state = capture(self.train_chain)
        loader, trainer = self.train_loader, self.trainer
        trained = trainer.fit_loop.epoch_loop.batch_progress.current.completed if trainer is not None else 0
        if loader is not None and loader.epoch_start is not None and 0 < trained < len(loader):
            state |= {"epoch_start": loader.epoch_start, "trained": int(trained)}  # inside an epoch: its replay
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return {"random_state": state}
        every: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(every, state)
        return {"random_state": every[0], "random_state_by_rank": every}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """On resume (before the training loader exists): keep the random state for :meth:`train_dataloader`."""
        self.resumed_random_state = dict(state_dict) if state_dict else None

    def prepare_data(self) -> None:
        """Once, on rank 0: generate the phantom if needed and check every case's files."""
        from ctbench.data.integrity import verify_before_training

        cases = list_cases(self.cfg, check_files=False)
        verify_before_training(cases, self.cfg, self.cache_dir / "integrity.json")

    def setup(self, stage: str | None = None) -> None:
        if self.split:
            return
        cases = list_cases(self.cfg)
        self.cases = {c["case"]: c for c in cases}
        splits = dataset_splits(self.cfg, sorted(self.cases), self.cache_dir)
        self.split = select_fold(splits, self.fold)
        if self.cfg["preprocessing"]["normalize"] == "zscore":
            self.zscore = self._zscore_stats()

    def _zscore_stats(self) -> tuple[float, float]:
        window = window_bounds(self.cfg["preprocessing"]["window"])
        path = self.cache_dir / f"zscore_fold{self.fold}.json"
        train = [self.cases[c] for c in self.split["train"]]
        key = _sha1({"window": list(window), "labels": [[c["image"], c["label"]] for c in train]})
        if path.exists():
            stored = json.loads(path.read_text())
            if stored["window"] == list(window) and stored.get("key") == key:
                return stored["mean"], stored["std"]
        from ctbench.atomic import atomic_write_json

        mean, std = foreground_statistics(train, window)
        atomic_write_json(path, {"window": list(window), "key": key, "mean": mean, "std": std})
        return mean, std

    def persistent_dir(self, role: Mapping[str, Any]) -> Path:
        """``cache_dir/persistent/<sha1 of cache_key>``: one folder per preprocessing config and chain, with
        ``key.json`` saying what it holds; a changed config gets a new folder, never a stale file."""
        key = cache_key(self.cfg["preprocessing"], self.zscore, role)
        folder = self.cache_dir / "persistent" / _sha1(key)[:16]
        if not (folder / "key.json").exists():
            from ctbench.atomic import atomic_write_json

            atomic_write_json(folder / "key.json", key)
        return folder

    def _cached(self, names: list[str], transform, cache: bool, role: Mapping[str, Any]) -> Dataset:
        data = [{**self.cases[n], "source_image": image_files(self.cases[n])[0], "source_label": self.cases[n]["label"]}
                for n in names]
        if cache and self.cfg.get("cache", "memory") == "memory":
            # multi-channel cases are cached by one thread: with several, the loading chain sometimes handed
            # validation a 1-channel volume (a race seen in 1 of 2 runs; serial caching: 6 of 6 correct)
            multi = any(isinstance(item["image"], list | tuple) and len(item["image"]) > 1 for item in data)
            return CacheDataset(data, transform=transform, cache_rate=1.0, num_workers=1 if multi else None,
                                progress=False)
        if self.cfg.get("cache") == "disk":
            from monai.data import PersistentDataset

            whole = role["chain"] == "eval"  # whole volumes keep their MetaTensor geometry (written back later)
            return PersistentDataset(data, transform=transform, cache_dir=self.persistent_dir(role),
                                     hash_func=item_hash, track_meta=whole, weights_only=not whole)
        return Dataset(data, transform=transform)

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool, sampler: Sampler | None = None) -> DataLoader:
        """``shuffle`` marks the training loader (persistent workers; pinned memory on a GPU, so that the copy
        to the device runs beside the step); a ``sampler`` replaces shuffling. The
        evaluation loaders draw from a generator of their own: built without workers, MONAI's DataLoader
        re-seeds its generator, which for the training loader is torch's global one, and an evaluation loader
        built in the middle of training (the first validation; after a resume, a later one) would restart
        the training stream."""
        import torch

        workers = self.num_workers
        own = {} if shuffle else {"generator": torch.Generator().manual_seed(self.seed)}
        return (ReplayingLoader if shuffle else DataLoader)(
            dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler, num_workers=workers,
            collate_fn=list_data_collate, persistent_workers=workers > 0 and shuffle,
            pin_memory=self.on_gpu and shuffle, **own)

    def train_dataloader(self) -> DataLoader:
        per_batch, per_volume = batch_layout(self.batch_size, int(self.cfg["samples_per_volume"]))
        chain = train_chain(self.cfg["preprocessing"], self.patch, int(self.cfg["num_classes"]), per_volume,
                            self.zscore, self.weight_map, self.augment, self.crop_ratios)
        chain.set_random_state(seed=self.seed)  # workers are re-seeded by MONAI's DataLoader from torch's seed
        role = {"chain": "train", "patch": self.patch, "num_classes": int(self.cfg["num_classes"]),
                **({"weight_map": self.weight_map} if self.weight_map is not None else {})}
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        # each process caches only its shard of the training cases (under DDP not a full copy per process)
        dataset = self._cached(rank_shard(self.split["train"], rank, world), chain, cache=True, role=role)
        draws = volumes_per_epoch(self.cfg, world)
        if draws is not None:  # a fixed number of volumes an epoch, a stream of its own per rank
            sampler: Sampler | None = VolumeDraws(dataset, draws, self.seed + 1000 * rank)
        elif world > 1:  # a one-replica DistributedSampler, which Lightning leaves in place (re-shuffled each epoch)
            sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=self.seed)
        else:
            sampler = None
        loader = self._loader(dataset, per_batch, shuffle=True, sampler=sampler)
        self.train_chain, self.train_loader = chain, loader
        loader.chain = chain
        # after the loader: MONAI's DataLoader re-seeds chain and torch
        if self.resumed_random_state is not None:
            self._continue_random_state(rank)
        elif rank > 0:
            seed_rank(chain, self.seed, rank)
        return loader

    def _continue_random_state(self, rank: int) -> None:
        state, why_not = rank_state(self.resumed_random_state, rank)
        self.resumed_random_state = None
        if state is not None:
            why_not = restore(self.train_chain, state)
        if why_not is None and "epoch_start" in state:  # written inside an epoch: replay its trained batches
            trained = state.get("trained")
            why_not = restore(self.train_chain, state["epoch_start"]) if isinstance(trained, int) and trained > 0 \
                else f"the checkpoint's count of trained batches is {trained!r}"
            if why_not is None:
                self.train_loader.replay = (state["epoch_start"], state, trained)
                warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the "
                                        "epoch ended")  # Lightning's: this loader resumes the epoch's own batches
            else:
                restore(self.train_chain, state)
                print(f"resume: {why_not}; the rest of the interrupted epoch is a fresh draw from the checkpoint's "
                      "random state")
                return
        if why_not is not None:
            if rank > 0:
                seed_rank(self.train_chain, self.seed, rank)
            print(f"resume: {why_not}; the training stream restarts from the seed (the run is not the same as an "
                  "uninterrupted one)")

    def eval_dataset(self, split: str) -> Dataset:
        return self._cached(self.split[split], eval_chain(self.cfg["preprocessing"], True, self.zscore),
                            cache=split == "val", role={"chain": "eval"})

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.eval_dataset("val"), 1, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.eval_dataset("test"), 1, shuffle=False)
