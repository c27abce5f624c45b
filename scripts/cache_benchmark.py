#!/usr/bin/env python
"""Epoch time of the training data loader with and without the preprocessing cache.

For each ``dataset.cache`` mode (``none``, ``memory``, ``disk``) a fresh ``CTDataModule`` of the
composed config (default: the default phantom, ``dataset=synthetic``) is set up and its training
loader is iterated for ``1 + --epochs`` epochs with no model, so the figures are data time only:

- epoch 1: ``none`` preprocesses every case; ``memory`` fills the in-memory cache (timed with the
  loader's construction, where MONAI's CacheDataset does it); ``disk`` writes the PersistentDataset
  cache (emptied first, so this is a cold start);
- epoch 2 (the median of epochs 2 .. 1 + ``--epochs``): what every later epoch costs.

    .venv/bin/python scripts/cache_benchmark.py                       # default phantom, 2 later epochs
    .venv/bin/python scripts/cache_benchmark.py --epochs 3 -o dataset.num_workers=0
    .venv/bin/python scripts/cache_benchmark.py -o debug=fast          # seconds: checks that it runs

Prints a table and writes ``--out`` (default ``WORKDIR/cache_benchmark.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

MODES = ("none", "memory", "disk")


def compose(workdir: Path, overrides: list[str], mode: str):
    from ctbench.config import compose as ctbench_compose

    return ctbench_compose("train", [f"paths.root_dir={workdir}", *overrides, f"dataset.cache={mode}"])


def measure(workdir: Path, overrides: list[str], mode: str, epochs: int, seed: int) -> dict:
    import torch

    from ctbench.data.datamodule import CTDataModule

    cfg = compose(workdir, overrides, mode)
    cache = Path(cfg.dataset.cache_dir).resolve()
    shutil.rmtree(cache / "persistent", ignore_errors=True)  # cold start for the disk cache
    torch.manual_seed(seed)
    dm = CTDataModule(cfg.dataset, int(cfg.dims), int(cfg.fold), cache, seed=seed)
    dm.prepare_data()
    dm.setup()
    times, patches = [], 0
    start = time.perf_counter()
    loader = dm.train_dataloader()  # the memory cache is filled here
    for epoch in range(1 + epochs):
        if epoch:
            start = time.perf_counter()
        for batch in loader:
            patches += int(batch["image"].shape[0]) if epoch == 0 else 0
        times.append(time.perf_counter() - start)
    disk = sum(p.stat().st_size for p in (cache / "persistent").rglob("*.pt")) if mode == "disk" else 0
    return {"mode": mode, "epoch1_s": round(times[0], 3), "epoch2_s": round(statistics.median(times[1:]), 3),
            "later_epochs_s": [round(t, 3) for t in times[1:]], "cases": len(dm.split["train"]),
            "patches_per_epoch": patches, "disk_cache_mb": round(disk / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="later epochs timed (median = 'epoch 2'); default 2")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ctbench_cache_benchmark"),
                        help="paths.root_dir: phantom and caches go here")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("-o", "--override", action="append", default=[], help="a config override (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = [measure(args.workdir, args.override, mode, args.epochs, args.seed) for mode in args.modes]
    by = {r["mode"]: r for r in rows}
    result = {"overrides": args.override, "epochs_timed": args.epochs, "cpu_count": os.cpu_count(), "rows": rows}
    if "none" in by:
        for mode in ("memory", "disk"):
            if mode in by:
                result[f"epoch2_speedup_{mode}"] = round(by["none"]["epoch2_s"] / max(by[mode]["epoch2_s"], 1e-9), 2)
    out = args.out or args.workdir / "cache_benchmark.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'cache':<8}{'cases':>6}{'patches':>9}{'epoch 1 s':>11}{'epoch 2 s':>11}{'disk MB':>9}")
    for r in rows:
        print(f"{r['mode']:<8}{r['cases']:>6}{r['patches_per_epoch']:>9}{r['epoch1_s']:>11.2f}{r['epoch2_s']:>11.2f}"
              f"{r['disk_cache_mb']:>9.1f}")
    for mode in ("memory", "disk"):
        if f"epoch2_speedup_{mode}" in result:
            print(f"epoch 2 without cache / with {mode} cache: x{result[f'epoch2_speedup_{mode}']}")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
