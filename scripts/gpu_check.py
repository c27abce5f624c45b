#!/usr/bin/env python
"""GPU check (issue 7): one NVIDIA GPU, under 8 minutes, nothing to set up beyond ``make setup``.

1. Training steps/s of the 3D U-Net of the benchmark (MONAI UNet, channels 16-128, strides 2,2,2,
   2 residual units; DiceCELoss; Adam) at batch 2 of 128^3 patches in a plain loop on one fixed
   batch: fp32, bf16-mixed, 16-mixed (GradScaler), bf16 + channels_last_3d, bf16 + torch.compile.
   Targets: mixed precision >= 1.8x fp32.
2. ctbench's own training (SegmentationModule in a Lightning Trainer, bf16-mixed), eager and with
   ``compile=true``: steps/s on one fixed batch on the GPU and on the real loader (CTDataModule over
   cached phantom data, 128^3), their ratio (the loader's efficiency) and GPU utilisation (NVML via
   pynvml, else ``nvidia-smi``, every 0.2 s) over the real-loader window; and the loader alone (batches/s
   to the GPU with no training). Target: >= 90 % busy.
3. Sliding-window seconds per 512x512x300 volume (roi 128^3, overlap 0.25, Gaussian blending) with
   ctbench's SlidingWindowPredictor, fp32 and bf16 autocast.

Prints a table and writes ``--out`` (default ``gpu_check.json``). Without a CUDA GPU it prints a
message and exits 0 (CI never depends on a GPU).

    .venv/bin/python scripts/gpu_check.py                 # everything (about 5 minutes on an H100)
    .venv/bin/python scripts/gpu_check.py --parts ctbench --window 30 -o dataset.num_workers=12
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BUDGET_S = 8 * 60


def log(message: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- utilisation sampling ----------------------------------------------------------------------
class UtilisationSampler:
    """GPU busy % every ``interval`` seconds from NVML (pynvml) or ``nvidia-smi`` in a thread."""

    def __init__(self, device_index: int = 0, uuid: str | None = None, interval: float = 0.2) -> None:
        self.interval, self.samples = interval, []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.source = None
        self._read = None
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = None
            if uuid:
                with contextlib.suppress(Exception):
                    handle = pynvml.nvmlDeviceGetHandleByUUID(uuid.encode() if isinstance(uuid, str) else uuid)
            if handle is None:
                handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            self._read = lambda: (float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                                  pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**30)
            self.source = "pynvml"
        except Exception:  # pynvml missing or NVML not usable: nvidia-smi
            smi = shutil.which("nvidia-smi")
            if smi:
                ident = uuid or str(device_index)

                def read() -> tuple[float, float]:
                    out = subprocess.run([smi, f"--id={ident}", "--query-gpu=utilization.gpu,memory.used",
                                          "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
                    util, mem = out.stdout.strip().splitlines()[0].split(",")
                    return float(util), float(mem) / 1024

                self._read = read
                self.source = "nvidia-smi"

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                util, mem = self._read()
                self.samples.append((time.perf_counter(), util, mem))
            self._stop.wait(self.interval)

    def __enter__(self) -> UtilisationSampler:
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self, start: float, end: float) -> dict[str, Any]:
        """Samples between the ``time.perf_counter()`` instants ``start`` and ``end``."""
        kept = [s for s in self.samples if start <= s[0] <= end]
        if not kept:
            return {"source": self.source, "samples": 0}
        utils = [s[1] for s in kept]
        return {"source": self.source, "samples": len(kept), "mean_util_pct": round(statistics.fmean(utils), 1),
                "median_util_pct": round(statistics.median(utils), 1),
                "fraction_samples_ge_90pct": round(sum(u >= 90 for u in utils) / len(utils), 3),
                "max_memory_used_gb": round(max(s[2] for s in kept), 2)}


# ---- 1. precision / layout / compile -----------------------------------------------------------
def unet(out_channels: int = 5):
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=1, out_channels=out_channels, channels=(16, 32, 64, 128),
                strides=(2, 2, 2), num_res_units=2)


def time_plain(variant: dict[str, Any], batch: tuple, steps: int, warmup: int) -> dict[str, Any]:
    """Steps/s of a plain loop on one fixed batch for one precision/layout/compile variant."""
    import torch
    from monai.losses import DiceCELoss

    device = torch.device("cuda")
    torch.manual_seed(0)
    model = unet().to(device)
    image, label = batch
    if variant.get("channels_last"):
        model = model.to(memory_format=torch.channels_last_3d)
        image = image.contiguous(memory_format=torch.channels_last_3d)
    forward = torch.compile(model) if variant.get("compile") else model
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    dtype = variant.get("dtype")
    scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            logits = forward(image)
        loss = loss_fn(logits.float(), label)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    torch.cuda.synchronize(device)
    warm = time.perf_counter() - t0
    seconds = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - t)
    med = statistics.median(seconds)
    return {"median_step_s": round(med, 5), "steps_per_s": round(1 / med, 3), "warmup_s": round(warm, 2),
            "peak_memory_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2), "steps": steps}


def part_precision(args, result: dict[str, Any]) -> None:
    import torch

    device = torch.device("cuda")
    size = [args.patch] * 3
    image = torch.rand(2, 1, *size, device=device)
    label = torch.randint(0, 5, (2, 1, *size), device=device).float()
    bf16 = torch.cuda.is_bf16_supported()
    variants: dict[str, dict[str, Any]] = {"fp32": {}, "16-mixed": {"dtype": torch.float16}}
    if bf16:
        variants["bf16-mixed"] = {"dtype": torch.bfloat16}
        variants["bf16-mixed + channels_last_3d"] = {"dtype": torch.bfloat16, "channels_last": True}
        if not args.skip_compile:
            variants["bf16-mixed + torch.compile"] = {"dtype": torch.bfloat16, "compile": True}
    out: dict[str, Any] = {"patch": size, "batch": 2, "cudnn_benchmark": torch.backends.cudnn.benchmark,
                           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                           "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32, "variants": {}}
    for name, variant in variants.items():
        log(f"precision: {name}")
        try:
            out["variants"][name] = time_plain(variant, (image, label), args.steps, args.warmup)
        except Exception as err:  # a compile or dtype failure is a finding, not a crash
            out["variants"][name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
        torch.cuda.empty_cache()
    fp32 = out["variants"]["fp32"].get("steps_per_s")
    for v in out["variants"].values():
        if fp32 and v.get("steps_per_s"):
            v["speedup_vs_fp32"] = round(v["steps_per_s"] / fp32, 3)
    result["precision"] = out


# ---- ctbench pieces ------------------------------------------------------------------------------
PARTS = ("precision", "ctbench", "sliding_window")


def base_overrides(args) -> list[str]:
    """The overrides every ctbench part composes with (the patch size from ``args``)."""
    return ["trainer=gpu", f"dataset.patch_size_3d=[{args.patch},{args.patch},{args.patch}]",
            "dataset.batch_size_3d=2", "progress_bar=false",
            # the phantom's 16 training cases make 16-step epochs, 1.15x slower than 250-volume ones on an H200
            # (docs/performance.md): an epoch of 250 volumes, as nnU-Net's 250 iterations
            "dataset.volumes_per_epoch=250"]


def compose(overrides: Sequence[str]):
    """The config ``ctbench train OVERRIDES`` composes, with its run names."""
    from omegaconf import OmegaConf

    from ctbench.config import compose_with_context, run_names

    cfg, ctx = compose_with_context("train", overrides)
    OmegaConf.set_struct(cfg, False)
    cfg.names = run_names(ctx.choices)
    return cfg


def window_rate(warmup_steps: int, window_s: float):
    """A Lightning callback that times ``window_s`` seconds of training after ``warmup_steps`` steps (compiling
    happens there) and then stops the fit. It synchronises the GPU only at the window's two ends: a timer that
    synchronises every step (``StepTimer``) idles the GPU while the next batch is fetched and so measures a
    utilisation that real training, which overlaps them, does not have."""
    import lightning.pytorch as pl
    import torch

    class WindowRate(pl.Callback):
        def __init__(self) -> None:
            self.count, self.t0, self.t1, self.n0, self.n1 = 0, None, None, 0, 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.t0 is None and self.count == warmup_steps:
                torch.cuda.synchronize()
                self.t0, self.n0 = time.perf_counter(), self.count
            self.count += 1

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if self.t0 is not None and self.t1 is None and time.perf_counter() - self.t0 >= window_s:
                torch.cuda.synchronize()
                self.t1, self.n1 = time.perf_counter(), self.count
                trainer.should_stop = True

        def summary(self) -> dict[str, Any]:
            if self.t1 is None:
                return {"error": f"the window did not close ({self.count} steps)"}
            steps = self.n1 - self.n0
            return {"steps": steps, "window_s": round(self.t1 - self.t0, 2),
                    "steps_per_s": round(steps / (self.t1 - self.t0), 3)}

    return WindowRate()


def fit_window(cfg, module, loader, args, window_s: float) -> dict[str, Any]:
    """Train ``module`` on ``loader`` for ``window_s`` seconds after ``args.warmup`` steps while sampling
    GPU utilisation; the rate and the utilisation of that window."""
    import torch

    from ctbench.engine.throughput import bench_trainer

    rate = window_rate(args.warmup, window_s)
    trainer = bench_trainer(cfg, [rate], max_steps=10_000_000)
    uuid = None
    with contextlib.suppress(Exception):
        uuid = "GPU-" + str(torch.cuda.get_device_properties(0).uuid).removeprefix("GPU-")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    with UtilisationSampler(int(visible) if visible.isdigit() else 0, uuid) as sampler:
        trainer.fit(module, train_dataloaders=loader)
    entry = rate.summary()
    if rate.t1 is not None:
        entry.update(sampler.summary(rate.t0, rate.t1))
    return entry


DEVICE = "cuda"  # where part_ctbench's fixed batch lives


def loader_rate(loader, window_s: float) -> dict[str, Any]:
    """Batches a second that ``loader`` delivers to the GPU with no training (each batch copied to the device as
    Lightning does, non-blocking from pinned memory), over ``window_s`` seconds after one epoch's start: whether
    the loader alone could feed the rate the fixed batch trains at."""
    import torch

    batches, t0 = 0, None
    while t0 is None or time.perf_counter() - t0 < window_s:
        for batch in loader:
            batch = {k: v.to(DEVICE, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            if t0 is None:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            else:
                batches += 1
            if time.perf_counter() - t0 >= window_s:
                break
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return {"batches": batches, "window_s": round(elapsed, 2), "batches_per_s": round(batches / elapsed, 2)}


#: the ctbench configurations the ctbench parts compare: (name, extra overrides)
VARIANTS = (("eager", []), ("compile=true", ["compile=true"]),
            ("compile=true, each case once an epoch", ["compile=true", "dataset.volumes_per_epoch=null"]))


def part_ctbench(args, result: dict[str, Any]) -> None:
    """ctbench's own training (SegmentationModule in a Lightning Trainer, bf16-mixed, 128^3, batch 2), each
    variant twice: on one fixed batch on the GPU (no loading) and on the real loader (cached phantom,
    ``dataset.num_workers=auto``, pinned memory). Their ratio is the loader's efficiency; GPU busy % is
    sampled over the real-loader window."""
    import torch

    from ctbench.engine.throughput import FixedBatches, build

    out: dict[str, Any] = {}
    for name, extra in VARIANTS[:1] if args.skip_compile else VARIANTS:
        cfg = compose([*base_overrides(args), *extra, *args.override])
        entry: dict[str, Any] = {"overrides": extra}
        size = [args.patch] * 3
        batch = {"image": torch.rand(2, 1, *size, device=DEVICE),
                 "label": torch.randint(0, 5, (2, 1, *size), device=DEVICE).float()}
        log(f"ctbench {name}: fixed batch, {args.fixed_window:.0f} s")
        module, _ = build(cfg)
        entry["fixed_batch"] = fit_window(cfg, module, FixedBatches(batch, 10_000_000), args, args.fixed_window)
        del batch, module
        torch.cuda.empty_cache()
        module, data = build(cfg)  # fresh weights for the real loader's window
        data.prepare_data()
        data.setup("fit")
        loader = data.train_dataloader()
        log(f"ctbench {name}: real loader ({loader.num_workers} workers, pin_memory={loader.pin_memory}), "
            f"{args.window:.0f} s")
        entry["real_loader"] = fit_window(cfg, module, loader, args, args.window)
        entry["real_loader"].update(num_workers=int(loader.num_workers), pin_memory=bool(loader.pin_memory))
        if name == VARIANTS[0][0]:
            log(f"ctbench {name}: the loader alone, batches to the GPU, {args.fixed_window:.0f} s")
            entry["loader_alone"] = loader_rate(loader, args.fixed_window)
        fixed, real = entry["fixed_batch"].get("steps_per_s"), entry["real_loader"].get("steps_per_s")
        if fixed and real:
            entry["loader_efficiency"] = round(real / fixed, 3)
        out[name] = entry
        del loader, data, module
        torch.cuda.empty_cache()
    eager = out.get("eager", {}).get("real_loader", {}).get("steps_per_s")
    for entry in out.values():
        real = entry.get("real_loader", {}).get("steps_per_s")
        if eager and real:
            entry["real_loader_speedup_vs_eager"] = round(real / eager, 3)
    result["ctbench"] = out


def part_sliding_window(args, cfg, result: dict[str, Any]) -> None:
    import torch

    from ctbench.engine.throughput import build, measure_sliding_window

    module, _ = build(cfg)
    out = {}
    for precision in ("32", "bf16-mixed"):
        log(f"sliding window {'x'.join(map(str, args.sw_volume))}, roi {args.patch}^3: {precision}")
        try:
            out[precision] = measure_sliding_window(module, args.sw_volume, args.sw_repeats, torch.device("cuda"),
                                                    precision)
            out[precision].pop("seconds", None)
        except torch.cuda.OutOfMemoryError as err:
            out[precision] = {"error": f"out of memory: {str(err).splitlines()[0][:160]}"}
        torch.cuda.empty_cache()
    result["sliding_window"] = out


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ctbench GPU check: {result['machine'].get('gpus')}")
    for col in ("measure", "value", "note"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for name, v in result.get("precision", {}).get("variants", {}).items():
        if "error" in v:
            table.add_row(f"train steps/s, {name}", "error", v["error"][:80])
        else:
            table.add_row(f"train steps/s, {name}", f"{v['steps_per_s']:.2f}",
                          f"x{v.get('speedup_vs_fp32', 1):.2f} vs fp32, {v['peak_memory_gb']} GB peak (target x1.8)")
    for name, entry in result.get("ctbench", {}).items():
        fixed, real = entry.get("fixed_batch", {}), entry.get("real_loader", {})
        if "steps_per_s" in fixed:
            table.add_row(f"ctbench steps/s, {name}, fixed batch", f"{fixed['steps_per_s']:.2f}",
                          f"bf16-mixed; GPU busy {fixed.get('mean_util_pct', float('nan')):.1f} %")
        if "steps_per_s" in real:
            table.add_row(f"ctbench steps/s, {name}, real loader", f"{real['steps_per_s']:.2f}",
                          f"GPU busy {real.get('mean_util_pct', float('nan')):.1f} % (target >= 90 %), "
                          f"{real['num_workers']} workers, x{entry.get('loader_efficiency', float('nan')):.2f} "
                          f"of fixed batch, x{entry.get('real_loader_speedup_vs_eager', float('nan')):.2f} of eager")
        alone = entry.get("loader_alone", {})
        if "batches_per_s" in alone:
            table.add_row(f"ctbench loader alone, {name}", f"{alone['batches_per_s']:.2f}",
                          "batches/s to the GPU, no training (the most the real loader could feed)")
        for part in ("fixed_batch", "real_loader"):
            if "error" in entry.get(part, {}):
                table.add_row(f"ctbench {name}, {part}", "error", entry[part]["error"][:80])
    for precision, s in result.get("sliding_window", {}).items():
        table.add_row(f"sliding window per volume, {precision}",
                      f"{s['seconds_per_volume']:.2f} s" if "seconds_per_volume" in s else "error",
                      f"{'x'.join(map(str, s.get('volume', [])))}, roi {s.get('roi')}" if "volume" in s else s["error"])
    Console(width=120).print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patch", type=int, default=128, help="training patch side (128)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant (20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per variant (5)")
    parser.add_argument("--skip-compile", action="store_true", help="leave torch.compile out (plain loop and ctbench)")
    parser.add_argument("--window", type=float, default=60.0, help="real-loader window in seconds (60)")
    parser.add_argument("--fixed-window", type=float, default=15.0, help="fixed-batch window in seconds (15)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure (all)")
    parser.add_argument("--sw-volume", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--sw-repeats", type=int, default=3)
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Hydra override for the ctbench parts (e.g. dataset.num_workers=8)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU visible (torch {torch.__version__}, "
              f"CUDA build {torch.version.cuda or 'none'}): nothing to check on this machine.")
        return 0
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    import lightning.pytorch  # noqa: F401

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from ctbench.atomic import atomic_write_json
    from ctbench.provenance import machine_info, package_versions

    torch.backends.cudnn.benchmark = True  # as the gpu trainer preset does
    start = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "scripts/gpu_check.py", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "machine": machine_info(), "versions": {**package_versions(), "cuda": torch.version.cuda,
                                                                      "cudnn": torch.backends.cudnn.version()}}
    cfg = compose([*base_overrides(args), *args.override])
    steps: list[tuple[str, Any]] = [
        ("precision", lambda: part_precision(args, result)),
        ("ctbench", lambda: part_ctbench(args, result)),
        ("sliding_window", lambda: part_sliding_window(args, cfg, result)),
    ]
    steps = [(name, run) for name, run in steps if name in args.parts]
    for name, run in steps:
        try:
            run()
        except Exception as err:  # report and go on: one failing part must not hide the others
            result[name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"}
            log(f"{name} failed: {result[name]['error']}")
        torch.cuda.empty_cache()
        atomic_write_json(args.out, result)  # partial results survive a time-out
        if time.perf_counter() - start > BUDGET_S:
            log(f"stopping after {name}: over the {BUDGET_S // 60} min budget")
            break
    result["wall_s"] = round(time.perf_counter() - start, 1)
    atomic_write_json(args.out, result)
    print_table(result)
    print(f"written: {args.out.resolve()}  ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
