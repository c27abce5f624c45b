"""Lightning DataModule: case list -> split -> cached MONAI datasets -> loaders.

Training yields class-balanced patches (3D) or axial slices (2D); validation and test yield whole
preprocessed volumes (batch size 1) whose MetaTensor geometry lets predictions be mapped back to
the original files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from monai.data import CacheDataset, DataLoader, Dataset, list_data_collate

from ctbench.data.datasets import list_cases, load_or_make_splits, select_fold
from ctbench.data.transforms import eval_chain, foreground_statistics, train_chain, window_bounds
from ctbench.errors import CTBenchError


def by_dims(dataset: Mapping[str, Any], key: str, dims: int) -> Any:
    """``dataset[key + "_3d"]`` or ``dataset[key + "_2d"]``: patch and batch sizes differ by dimensionality."""
    return dataset[f"{key}_{dims}d"]


class CTDataModule(pl.LightningDataModule):
    """Data for one run.

    Args:
        dataset: the composed ``dataset`` config.
        dims: 2 (axial slices) or 3 (volumes).
        fold: which train/val fold of the stored splits to use.
        cache_dir: where ``splits.json`` and normalisation statistics live for this dataset.
        size_divisor: every training patch side must be a multiple of it (the model's total stride).
        seed: seed of the random patch sampling (reproducible runs).
    """

    def __init__(self, dataset: Mapping[str, Any], dims: int, fold: int, cache_dir: str | Path,
                 size_divisor: int = 1, seed: int = 0) -> None:
        super().__init__()
        self.cfg, self.dims, self.fold, self.seed = dataset, dims, fold, seed
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
        splits = load_or_make_splits(self.cache_dir / "splits.json", sorted(self.cases),
                                     int(self.cfg["test_cases"]), int(self.cfg["num_folds"]))
        self.split = select_fold(splits, self.fold)
        if self.cfg["preprocessing"]["normalize"] == "zscore":
            self.zscore = self._zscore_stats()

    def _zscore_stats(self) -> tuple[float, float]:
        window = window_bounds(self.cfg["preprocessing"]["window"])
        path = self.cache_dir / f"zscore_fold{self.fold}.json"
        if path.exists():
            stored = json.loads(path.read_text())
            if stored["window"] == list(window):
                return stored["mean"], stored["std"]
        from ctbench.atomic import atomic_write_json

        mean, std = foreground_statistics([self.cases[c] for c in self.split["train"]], window)
        atomic_write_json(path, {"window": list(window), "mean": mean, "std": std})
        return mean, std

    def _cached(self, names: list[str], transform, cache: bool) -> Dataset:
        data = [{**self.cases[n], "source_image": self.cases[n]["image"], "source_label": self.cases[n]["label"]}
                for n in names]
        if cache and self.cfg.get("cache", "memory") == "memory":
            return CacheDataset(data, transform=transform, cache_rate=1.0, num_workers=None, progress=False)
        if self.cfg.get("cache") == "disk":
            from monai.data import PersistentDataset

            return PersistentDataset(data, transform=transform, cache_dir=self.cache_dir / "persistent")
        return Dataset(data, transform=transform)

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        workers = int(self.cfg.get("num_workers", 0))
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                          collate_fn=list_data_collate, persistent_workers=workers > 0 and shuffle,
                          pin_memory=False)

    def train_dataloader(self) -> DataLoader:
        chain = train_chain(self.cfg["preprocessing"], self.patch, int(self.cfg["num_classes"]),
                            int(self.cfg["samples_per_volume"]), self.zscore)
        chain.set_random_state(seed=self.seed)  # workers are re-seeded by MONAI's DataLoader from torch's seed
        per_batch = max(1, self.batch_size // int(self.cfg["samples_per_volume"]))
        return self._loader(self._cached(self.split["train"], chain, cache=True), per_batch, shuffle=True)

    def eval_dataset(self, split: str) -> Dataset:
        return self._cached(self.split[split], eval_chain(self.cfg["preprocessing"], True, self.zscore),
                            cache=split == "val")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.eval_dataset("val"), 1, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.eval_dataset("test"), 1, shuffle=False)
