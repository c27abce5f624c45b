"""``ctbench bench``: throughput of the composed config, measured on the real objects.

What is measured (every figure on the objects ``ctbench train`` builds from the same config):

- ``loader``: the real :class:`~ctbench.data.datamodule.CTDataModule` training loader, alone: the
  first epoch including the cache build (``CacheDataset``) and worker start-up, then later epochs
  (patches per second), and the cache's memory and disk footprint.
- ``train``: training steps per second of the real :class:`~ctbench.engine.module.SegmentationModule`
  in a real Lightning ``Trainer`` (``max_steps``), timed by a callback at
  ``on_train_batch_start``/``on_train_batch_end``: with data loading (the real loader over cached
  data) and without (one batch from that loader, already in memory, fed again and again), plus the
  same fixed batch as plain ``torch.Tensor`` s (the cost of MONAI ``MetaTensor`` in the step).
- ``sliding_window``: seconds per whole volume (``bench.sw_volume``) of the module's
  :class:`~ctbench.engine.inference.SlidingWindowPredictor`.
- ``memory``: peak RSS of this process (and of its loader workers), current RSS.

Figures are medians over steps; the JSON keeps the raw per-step seconds so noisy machines can be
judged. ``benchmark.json`` (atomic write) also holds the machine, torch and package versions.
"""

from __future__ import annotations

import gc
import logging
import math
import shutil
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ctbench.config import RunContext
from ctbench.errors import CTBenchError

PARTS = ("loader", "train", "sliding_window", "memory")


def nbytes(obj: Any) -> int:
    """Bytes held by the tensors and arrays inside ``obj`` (dicts, lists, tuples walked)."""
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, Mapping):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    return 0


def folder_mb(path: str | Path) -> float:
    """Size of the files under ``path`` in MB (0 when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return 0.0
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 2)


# ---- statistics --------------------------------------------------------------------------------
def summarise(seconds: Sequence[float]) -> dict[str, Any]:
    """Median, mean, min, max and count of per-step seconds, plus steps per second from the median."""
    values = [float(s) for s in seconds]
    if not values:
        return {"n": 0}
    median = statistics.median(values)
    return {"n": len(values), "median_s": round(median, 5), "mean_s": round(statistics.fmean(values), 5),
            "min_s": round(min(values), 5), "max_s": round(max(values), 5),
            "per_s": round(1.0 / median, 4) if median > 0 else None, "seconds": [round(v, 5) for v in values]}


def _lean(stats: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if k != "seconds"}


# ---- Lightning pieces --------------------------------------------------------------------------
class StepTimer:
    """Wall-clock time at every ``on_train_batch_start`` and ``on_train_batch_end`` (a Lightning
    ``Callback``, made by :func:`step_timer` so that importing this module does not import Lightning).

    ``compute``: start to end of one step (forward, loss, backward, optimizer, logging);
    ``period``: start to the next start (adds fetching the next batch and the loop between steps);
    ``wait``: end to the next start. On a GPU the callback synchronises so that times are real.
    """

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.cpu_starts: list[float] = []  # this process's CPU seconds (all threads), less noisy on a busy machine

    @staticmethod
    def _now(pl_module) -> float:
        import torch

        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(self._now(pl_module))
        self.cpu_starts.append(time.process_time())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(self._now(pl_module))

    def compute(self, skip: int = 0) -> list[float]:
        return [e - s for s, e in zip(self.starts[skip:], self.ends[skip:], strict=False)]

    def period(self, skip: int = 0) -> list[float]:
        return [b - a for a, b in zip(self.starts[skip:-1], self.starts[skip + 1:], strict=False)]

    def wait(self, skip: int = 0) -> list[float]:
        return [s - e for e, s in zip(self.ends[skip:-1], self.starts[skip + 1:], strict=False)]

    def cpu_period(self, skip: int = 0) -> list[float]:
        return [b - a for a, b in zip(self.cpu_starts[skip:-1], self.cpu_starts[skip + 1:], strict=False)]


def step_timer() -> StepTimer:
    """A :class:`StepTimer` that is also a ``lightning.pytorch.Callback``."""
    import lightning.pytorch as pl

    cls = type("LightningStepTimer", (StepTimer, pl.Callback), {})
    return cls()


class FixedBatches:
    """The same batch ``n`` times: training input with no data loading at all."""

    def __init__(self, batch: Any, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self) -> Iterator[Any]:
        for _ in range(self.n):
            yield self.batch

    def __len__(self) -> int:
        return self.n


def bench_trainer(cfg: DictConfig, callbacks: list, **overrides: Any):
    """A Lightning ``Trainer`` from ``cfg.trainer`` (precision, accelerator, clipping as composed) for
    timing: one device, no validation, no logger, no checkpoints, no progress bar."""
    from ctbench.engine.components import instantiate

    args: dict[str, Any] = {"devices": 1, "num_nodes": 1, "strategy": "auto", "limit_val_batches": 0,
                            "num_sanity_val_steps": 0, "logger": False, "enable_checkpointing": False,
                            "enable_progress_bar": False, "enable_model_summary": False, "max_epochs": -1}
    args.update(overrides)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    for key in ("profiler", "fast_dev_run", "overfit_batches", "limit_train_batches", "max_time", "sync_batchnorm",
                "use_distributed_sampler", "plugins", "callbacks", "logger"):
        trainer_cfg.pop(key, None)
    return instantiate(trainer_cfg, "trainer", callbacks=callbacks, **args, _convert_="all")


def time_training_steps(module, cfg: DictConfig, batches, steps: int, warmup: int) -> StepTimer:
    """Train ``module`` for ``warmup + steps + 1`` steps on ``batches`` (a loader or an iterable) in a
    real ``Trainer``; the returned timer holds every step's times (skip ``warmup`` when summarising)."""
    timer = step_timer()
    trainer = bench_trainer(cfg, [timer], max_steps=warmup + steps + 1)
    trainer.fit(module, train_dataloaders=batches)
    return timer


def plain_batch(batch: Mapping[str, Any]) -> dict[str, Any]:
    """``batch`` with MONAI ``MetaTensor`` s turned into plain ``torch.Tensor`` s (same storage)."""
    import torch

    return {k: v.as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def to_device(batch: Mapping[str, Any], device) -> dict[str, Any]:
    import torch

    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


# ---- the measurements --------------------------------------------------------------------------
def build(cfg: DictConfig):
    """The module and data module ``ctbench train`` builds from ``cfg``."""
    from ctbench.engine.build import build_datamodule, build_module

    module = build_module(cfg)
    data = build_datamodule(cfg, int(getattr(module.model, "size_divisor", 1)), module.loss_fn)
    return module, data


def measure_loader(data, epochs: int) -> tuple[Any, dict[str, Any]]:
    """Build the cached training loader and iterate it ``epochs`` times (no model).

    Returns the loader (its cache and workers are reused by the training measurement) and
    ``{"caching_s", "first_epoch": {...}, "later_epochs": {...}, "cache_memory_mb", ...}``.
    """
    data.prepare_data()
    data.setup("fit")
    start = time.perf_counter()
    loader = data.train_dataloader()
    caching = time.perf_counter() - start
    epoch_stats = []
    for _ in range(max(1, epochs)):
        t0, samples, batches = time.perf_counter(), 0, 0
        for batch in loader:
            samples += int(batch["image"].shape[0])
            batches += 1
        epoch_stats.append({"seconds": time.perf_counter() - t0, "samples": samples, "batches": batches})
    first = epoch_stats[0]
    first_s = first["seconds"] + caching
    out: dict[str, Any] = {
        "caching_s": round(caching, 3),
        "first_epoch": {"seconds": round(first_s, 3), "samples": first["samples"], "batches": first["batches"],
                        "samples_per_s": round(first["samples"] / first_s, 3),
                        "samples_per_s_excluding_caching": round(first["samples"] / first["seconds"], 3)},
        "num_workers": int(loader.num_workers), "batch_size": int(data.batch_size),
        "train_cases": len(data.split.get("train", [])),
    }
    later = epoch_stats[1:]
    if later:
        rates = [e["samples"] / e["seconds"] for e in later]
        out["later_epochs"] = {"epochs": len(later), "samples_per_s": round(statistics.median(rates), 3),
                               "per_epoch_samples_per_s": [round(r, 3) for r in rates],
                               "seconds": [round(e["seconds"], 3) for e in later]}
    out.update(cache_footprint(loader.dataset, data))
    return loader, out


def cache_footprint(dataset, data) -> dict[str, Any]:
    """Memory held by the dataset's cache and the disk used by the raw data and the cache folder."""
    cache = getattr(dataset, "_cache", None)
    memory = nbytes(cache) / 2**20 if cache is not None else 0.0
    root = data.cfg.get("root")
    return {"cache_kind": str(data.cfg.get("cache", "memory")), "cache_memory_mb": round(memory, 2),
            "cache_disk_mb": folder_mb(data.cache_dir), "dataset_disk_mb": folder_mb(root) if root else None}


def bench_device(cfg: DictConfig):
    """The device the composed trainer trains on (``accelerator`` gpu/cuda, or auto with CUDA present)."""
    import torch

    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if cuda and torch.cuda.is_available() else "cpu")


def measure_training(module, cfg: DictConfig, loader, steps: int, warmup: int, rounds: int = 1) -> dict[str, Any]:
    """Steps/s with the real loader, and with one fixed in-memory batch (as delivered by the loader, and
    as plain tensors). With ``rounds > 1`` the three measurements alternate, so that load from other
    processes hits them alike; steps are pooled over rounds."""
    batch = next(iter(loader))
    fixed = to_device(batch, bench_device(cfg))  # already on the device: no copy in the timed steps
    n = warmup + steps + 1
    sources = {"with_loading": lambda: loader, "without_loading": lambda: FixedBatches(fixed, n),
               "without_loading_plain_tensors": lambda: FixedBatches(plain_batch(fixed), n)}
    timers: dict[str, list[StepTimer]] = {k: [] for k in sources}
    for r in range(max(1, rounds)):
        order = list(sources) if r % 2 == 0 else list(reversed(sources))
        for key in order:
            timers[key].append(time_training_steps(module, cfg, sources[key](), steps, warmup))

    def pooled(key: str, what: str) -> list[float]:
        return [s for t in timers[key] for s in getattr(t, what)(warmup)]

    image = batch["image"]
    result: dict[str, Any] = {
        "batch": {"shape": list(image.shape), "dtype": str(image.dtype), "type": type(image).__name__},
        "steps": steps, "warmup": warmup, "rounds": max(1, rounds),
    }
    for key in sources:
        result[key] = _lean(summarise(pooled(key, "period")))
        result[key]["cpu_median_s"] = round(statistics.median(pooled(key, "cpu_period")), 5)
    result["with_loading_compute"] = _lean(summarise(pooled("with_loading", "compute")))
    result["data_wait"] = _lean(summarise(pooled("with_loading", "wait")))
    result["raw_seconds"] = {k: [round(s, 5) for s in pooled(k, "period")] for k in sources}
    w, wo = result["with_loading"]["median_s"], result["without_loading"]["median_s"]
    result["loading_overhead_ratio"] = round(w / wo, 4) if wo else None
    result["metatensor_overhead_ratio"] = round(wo / result["without_loading_plain_tensors"]["median_s"], 4)
    return result


def measure_sliding_window(module, size: Sequence[int], repeats: int, device=None,
                           precision: str = "32") -> dict[str, Any]:
    """Seconds per volume of the module's sliding-window predictor on a random ``[1, C, *size]`` volume
    (under autocast for a mixed ``precision``, as Lightning runs validation)."""
    import contextlib

    import torch

    device = device or module.device
    module.to(device).eval()
    volume = torch.rand(1, int(module.cfg.dataset.in_channels), *[int(s) for s in size], device=device)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(precision))
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    seconds = []
    with autocast:
        module.segmenter.predictor(module.model, volume)  # warm-up (allocations, kernels)
        for _ in range(max(1, repeats)):
            sync()
            t0 = time.perf_counter()
            module.segmenter.predictor(module.model, volume)
            sync()
            seconds.append(time.perf_counter() - t0)
    module.train()
    p = module.segmenter.predictor
    stats = summarise(seconds)
    return {"volume": [int(s) for s in size], "roi": list(p.roi), "overlap": p.overlap, "sw_batch_size": p.sw_batch_size,
            "blend": p.mode, "tta_flips": list(p.tta_flips), "seconds_per_volume": stats["median_s"],
            **{k: stats[k] for k in ("n", "mean_s", "min_s", "seconds")}}


def _setting(cfg: DictConfig, key: str, default: Any) -> Any:
    bench = cfg.get("bench") or {}
    value = bench.get(key, default)
    return default if value is None else value


def run_benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Every part named in ``cfg.bench.parts``; returns the ``benchmark.json`` content."""
    import lightning.pytorch as pl

    from ctbench.data.datamodule import batch_layout
    from ctbench.models.base import parameter_count
    from ctbench.provenance import machine_info, memory_now, package_versions, peak_rss_mb, run_provenance

    parts = _setting(cfg, "parts", {p: True for p in PARTS})
    enabled = {p for p in PARTS if parts.get(p, False)}
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise CTBenchError(f"unknown bench.parts {sorted(unknown)}: use {', '.join(PARTS)}", exit_code=2)
    steps, warmup = int(_setting(cfg, "steps", 20)), int(_setting(cfg, "warmup", 3))
    if steps < 1 or warmup < 0:
        raise CTBenchError(f"bench.steps={steps} must be >= 1 and bench.warmup={warmup} >= 0")
    epochs = int(_setting(cfg, "loader_epochs", 3))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    memory_start = memory_now()
    module, data = build(cfg)
    dims = int(cfg.dims)
    result: dict[str, Any] = {
        "benchmark": "ctbench bench",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {"model": str(cfg.get("names", {}).get("model", cfg.model._target_)),
                   "loss": str(cfg.get("names", {}).get("loss", cfg.loss._target_)),
                   "dataset": str(cfg.dataset.name), "dims": dims,
                   "patch_size": list(cfg.dataset[f"patch_size_{dims}d"]),
                   "batch_size": int(cfg.dataset[f"batch_size_{dims}d"]),
                   "samples_per_volume": int(cfg.dataset.samples_per_volume),
                   "patches_per_batch": math.prod(batch_layout(int(cfg.dataset[f"batch_size_{dims}d"]),
                                                               int(cfg.dataset.samples_per_volume))),
                   "num_workers": data.num_workers, "cache": str(cfg.dataset.get("cache")),
                   "precision": str(cfg.trainer.get("precision", 32)),
                   "accelerator": str(cfg.trainer.get("accelerator", "auto")),
                   "params": parameter_count(module.model)},
        "settings": {"parts": sorted(enabled), "steps": steps, "warmup": warmup, "loader_epochs": epochs,
                     "rounds": int(_setting(cfg, "rounds", 1))},
        **run_provenance(cfg.seed, cfg.fold),
        "machine": machine_info(),  # the whole description, not only the run's CPU and threads
        "versions": package_versions(),
    }
    loader = None
    if "loader" in enabled:
        loader, result["loader"] = measure_loader(data, epochs)
    if "train" in enabled:
        if loader is None:
            data.prepare_data()
            data.setup("fit")
            loader = data.train_dataloader()
        result["train"] = measure_training(module, cfg, loader, steps, warmup, int(_setting(cfg, "rounds", 1)))
        train = result["train"]
        batch = result["config"]["patches_per_batch"]
        model_rate = batch / train["without_loading"]["median_s"]
        train["model_samples_per_s"] = round(model_rate, 3)
        if "loader" in result:
            ld = result["loader"]
            later = ld.get("later_epochs", ld["first_epoch"])["samples_per_s"]
            ld["model_samples_per_s"] = round(model_rate, 3)
            ld["loader_to_model_ratio"] = round(later / model_rate, 3)
            ld["first_epoch_loader_to_model_ratio"] = round(ld["first_epoch"]["samples_per_s"] / model_rate, 3)
        if "memory" in enabled:
            result.setdefault("memory", {})["during_training"] = memory_now()
    if loader is not None:
        del loader
        gc.collect()
    if "sliding_window" in enabled:
        size = list(_setting(cfg, "sw_volume", [128, 128, 96]))
        result["sliding_window"] = measure_sliding_window(module, size, int(_setting(cfg, "sw_repeats", 3)),
                                                          bench_device(cfg), str(cfg.trainer.get("precision", 32)))
    if "memory" in enabled:
        peak = peak_rss_mb()
        result.setdefault("memory", {}).update(
            {"start": memory_start, "end": memory_now(), "peak_rss_mb": peak["self_mb"],
             "peak_children_rss_mb": peak["children_mb"]})
        if "loader" in result:
            for key in ("cache_memory_mb", "cache_disk_mb", "dataset_disk_mb"):
                result["memory"][key] = result["loader"][key]
    result["device"] = str(bench_device(cfg))
    return result


def print_table(result: Mapping[str, Any], path: Path | None = None) -> None:
    """The figures of a ``benchmark.json`` as a rich table."""
    from rich.console import Console
    from rich.table import Table

    c = result["config"]
    table = Table(title=f"ctbench bench: {c['model']} + {c['loss']}, {c['dims']}D, patch {c['patch_size']}, "
                        f"batch {c['batch_size']}, precision {c['precision']}")
    for col, justify in (("measure", "left"), ("value", "right"), ("unit", "left"), ("note", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    if "train" in result:
        t = result["train"]
        table.add_row("train steps/s, with data loading", f"{t['with_loading']['per_s']:.3f}", "steps/s",
                      f"median {t['with_loading']['median_s']:.3f} s over {t['with_loading']['n']} steps")
        table.add_row("train steps/s, fixed batch in memory", f"{t['without_loading']['per_s']:.3f}", "steps/s",
                      f"median {t['without_loading']['median_s']:.3f} s ({t['batch']['type']})")
        table.add_row("  same batch as plain tensors", f"{t['without_loading_plain_tensors']['per_s']:.3f}", "steps/s",
                      f"MetaTensor cost x{t['metatensor_overhead_ratio']:.3f}")
        table.add_row("  data wait between steps", f"{t['data_wait']['median_s']:.4f}", "s (median)",
                      f"loading costs x{t['loading_overhead_ratio']:.3f}")
    if "loader" in result:
        ld = result["loader"]
        table.add_row("loader, first epoch incl. caching", f"{ld['first_epoch']['samples_per_s']:.2f}", "samples/s",
                      f"caching {ld['caching_s']:.2f} s, {ld['num_workers']} worker(s)")
        if "later_epochs" in ld:
            table.add_row("loader, later epochs", f"{ld['later_epochs']['samples_per_s']:.2f}", "samples/s",
                          f"median of {ld['later_epochs']['epochs']} epochs")
        if "loader_to_model_ratio" in ld:
            table.add_row("  loader / model consumption", f"{ld['loader_to_model_ratio']:.2f}", "x",
                          f"model takes {ld['model_samples_per_s']:.2f} samples/s")
        table.add_row("cache footprint", f"{ld['cache_memory_mb']:.1f}", "MB in memory",
                      f"{ld['cache_disk_mb']:.2f} MB cache dir, {ld['dataset_disk_mb']} MB raw data")
    if "sliding_window" in result:
        s = result["sliding_window"]
        table.add_row("sliding window per volume", f"{s['seconds_per_volume']:.3f}", "s",
                      f"{'x'.join(map(str, s['volume']))}, roi {'x'.join(map(str, s['roi']))}, overlap {s['overlap']}")
    if "memory" in result:
        m = result["memory"]
        table.add_row("peak RSS", f"{m['peak_rss_mb']:.0f}", "MB", "this process (VmHWM)")
        if m.get("during_training"):
            table.add_row("RSS while training", f"{m['during_training']['tree_pss_mb'] or 0:.0f}", "MB",
                          f"PSS, this process + {m['during_training']['processes'] - 1} live loader worker(s)")
    mach = result["machine"]
    table.caption = (f"{mach['cpu']}, {mach['usable_cpus']} CPU(s), torch {result['versions']['torch']}, "
                     f"{mach['torch_threads']} threads, load {mach['load_average']}"
                     + (f"\n{path}" if path else ""))
    Console(width=max(120, shutil.get_terminal_size().columns)).print(table)


def bench(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """``ctbench bench [overrides]``: measure, print the table, write ``benchmark.json`` in the run dir."""
    from ctbench.atomic import atomic_write_json
    from ctbench.config import run_names
    from ctbench.engine.run import validate

    validate(cfg)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    OmegaConf.set_struct(cfg, False)
    cfg.names = run_names(ctx.choices)
    result = run_benchmark(cfg)
    path = ctx.run_dir / str(_setting(cfg, "output", "benchmark.json"))
    atomic_write_json(path, result)
    print_table(result, path)
    return result
