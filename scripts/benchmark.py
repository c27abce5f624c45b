#!/usr/bin/env python
"""The comparisons of issue 7 in one run: ctbench against a plain PyTorch + MONAI loop and its peers.

Parts (all by default; name some to run only those):

  --overhead   (1) framework overhead: ctbench's training step (Hydra-composed via ``hydra.compose``,
               the real SegmentationModule in a Lightning Trainer, the real CTDataModule loader over
               cached data) against a plain loop written below: MONAI UNet(3D, channels 16-128,
               strides 2,2,2, 2 residual units), MONAI DiceCELoss, Adam, batch 2 of 96^3 patches.
               Ratio ctbench / plain with data loading counted and without (one fixed batch).
  --data       (2) data pipeline: loader patches/s (first epoch with caching, later epochs, 0 and
               the configured number of workers) against the model's consumption; cache footprint.
  --inference  (3) sliding window over one 128x128x96 volume (roi 96^3, overlap 0.25):
               ctbench's SlidingWindowPredictor against monai.inferers.sliding_window_inference
               called directly; mapping back to the input grid and NIfTI writing timed separately.
  --predict    (3) a whole ``ctbench predict`` on a folder of phantom volumes: start-up and per case.
  --startup    (5) ``ctbench --help`` and ``ctbench train --cfg job`` wall time.
  --memory     (6) peak RSS of ``ctbench train`` (default config, 5 epochs, validation every epoch)
               and its RSS at every epoch end (leak check), and this script's own peak RSS.

Blocks of the ctbench and the plain measurements are interleaved round by round, so load from
other processes hits both alike; figures are medians and the ratios are ratios of medians (the
per-round ratios are kept in the JSON too).

    .venv/bin/python scripts/benchmark.py                      # everything (tens of minutes on 2 cores)
    .venv/bin/python scripts/benchmark.py --quick              # tiny settings: checks that it all runs
    .venv/bin/python scripts/benchmark.py --overhead --data --rounds 3 --steps 8
    .venv/bin/python scripts/benchmark.py --inference -o paths.cache_dir=/tmp/cache

Writes ``--out`` (default ``WORKDIR/benchmark.json``) atomically and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PARTS = ("overhead", "data", "inference", "predict", "startup", "memory")

#: nnU-Net v2 figures quoted in issue 7 for this 2-core CPU (64^3 cases): not measured by this script.
NNUNET_QUOTED = {"startup_s": 8.0, "per_case_s_no_mirroring": 1.0, "per_case_s_mirroring": 7.7}

#: ctbench settings that make its workload the plain loop's: batch 2 of 96^3, Adam.
MATCHED = ["dataset.patch_size_3d=[96,96,96]", "dataset.batch_size_3d=2", "dataset.samples_per_volume=2",
           "optim.optimizer._target_=torch.optim.Adam", "optim.optimizer.lr=0.001", "optim.optimizer.weight_decay=0",
           "optim.scheduler.min_factor=1.0", "optim.scheduler.warmup_steps=0", "progress_bar=false"]
QUICK = ["debug=fast", "dataset.patch_size_3d=[32,32,32]"]


# ---- helpers -----------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {message}", flush=True)


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 5) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


def ctbench_command() -> list[str]:
    """The installed ``ctbench`` console script beside this Python, else ``python -m ctbench.cli``."""
    script = Path(sys.executable).parent / "ctbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ctbench.cli"]


def compose(overrides: Sequence[str]):
    """The config ``ctbench train OVERRIDES`` composes (no run directory), with its run names."""
    from omegaconf import OmegaConf

    from ctbench.config import compose_with_context, run_names

    cfg, ctx = compose_with_context("train", overrides)
    OmegaConf.set_struct(cfg, False)
    cfg.names = run_names(ctx.choices)
    return cfg


def is_body(x):
    """Foreground crop of the plain pipeline: voxels denser than air (top level: workers pickle it)."""
    return x > -500.0


# ---- (1) the plain PyTorch + MONAI loop --------------------------------------------------------
class PlainLoop:
    """A hand-written training loop: MONAI UNet, MONAI DiceCELoss, Adam; plain tensors in the step."""

    def __init__(self, cfg, device) -> None:
        import torch
        from monai.losses import DiceCELoss
        from monai.networks.nets import UNet

        self.device = device
        self.model = UNet(spatial_dims=3, in_channels=int(cfg.dataset.in_channels),
                          out_channels=int(cfg.dataset.num_classes), channels=(16, 32, 64, 128), strides=(2, 2, 2),
                          num_res_units=2).to(device)
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def step(self, image, label) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(image), label)
        loss.backward()
        self.optimizer.step()
        return loss

    def run(self, batches: Callable[[], Any], steps: int, warmup: int) -> tuple[list[float], list[float]]:
        """Time ``warmup + steps + 1`` steps over ``batches()`` (restarted when it ends); like ctbench's
        timer, a step's period runs from one step's start (its batch in hand) to the next one's.
        Returns wall-clock and process-CPU seconds per step."""
        import torch

        from ctbench.engine.throughput import plain_batch

        self.model.train()
        starts: list[float] = []
        cpu: list[float] = []
        total = warmup + steps + 1
        while len(starts) < total:
            for batch in batches():
                if len(starts) >= total:
                    break
                batch = plain_batch(batch)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                starts.append(time.perf_counter())
                cpu.append(time.process_time())
                self.step(batch["image"].to(self.device), batch["label"].to(self.device))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        def diff(t: list[float]) -> list[float]:
            return [b - a for a, b in zip(t[warmup:-1], t[warmup + 1:], strict=True)]

        return diff(starts), diff(cpu)


def plain_loader(cfg, files: list[dict[str, str]], workers: int):
    """The plain loop's own MONAI pipeline: the same preprocessing written out by hand, cached, with
    precomputed class indices (MONAI's recipe for fast class-balanced crops)."""
    from monai import transforms as T
    from monai.data import CacheDataset, DataLoader, list_data_collate

    from ctbench.data.transforms import window_bounds

    pre = cfg.dataset.preprocessing
    lower, upper = window_bounds(pre.window)
    keys = ["image", "label"]
    patch = list(cfg.dataset.patch_size_3d)
    classes = int(cfg.dataset.num_classes)
    chain = T.Compose([
        T.LoadImaged(keys, image_only=True, ensure_channel_first=True),
        T.Orientationd(keys, axcodes=pre.orientation),
        T.Spacingd(keys, pixdim=tuple(pre.spacing), mode=("bilinear", "nearest")),
        T.CropForegroundd(keys, source_key="image", select_fn=is_body, margin=2, allow_smaller=True),
        T.ScaleIntensityRanged("image", a_min=lower, a_max=upper, b_min=0.0, b_max=1.0, clip=True),
        T.SpatialPadd(keys, spatial_size=patch),
        T.ClassesToIndicesd("label", num_classes=classes, max_samples_per_class=20000),
        T.RandCropByLabelClassesd(keys, label_key="label", spatial_size=patch, num_classes=classes,
                                  num_samples=int(cfg.dataset.samples_per_volume), indices_key="label_cls_indices",
                                  warn=False),
        T.RandScaleIntensityd("image", factors=0.1, prob=0.5),
        T.RandShiftIntensityd("image", offsets=0.05, prob=0.5),
        T.DeleteItemsd("label_cls_indices"),
    ])
    dataset = CacheDataset(files, transform=chain, cache_rate=1.0, progress=False)
    per_batch = max(1, int(cfg.dataset.batch_size_3d) // int(cfg.dataset.samples_per_volume))
    return DataLoader(dataset, batch_size=per_batch, shuffle=True, num_workers=workers, collate_fn=list_data_collate,
                      persistent_workers=workers > 0)


def part_overhead(cfg, args, state: dict[str, Any]) -> dict[str, Any]:
    import torch

    from ctbench.engine.throughput import (
        FixedBatches,
        bench_device,
        build,
        plain_batch,
        time_training_steps,
        to_device,
    )

    device = bench_device(cfg)
    module, data = build(cfg)
    data.prepare_data()
    data.setup("fit")
    loader = data.train_dataloader()
    batch = to_device(next(iter(loader)), device)
    delivered = batch
    plain_tensors = plain_batch(batch)
    files = [{"image": data.cases[c]["image"], "label": data.cases[c]["label"]} for c in data.split["train"]]
    workers = data.num_workers
    plain = PlainLoop(cfg, device)
    own_loader = plain_loader(cfg, files, workers)
    steps, warmup, n = args.steps, args.warmup, args.steps + args.warmup + 1
    keys = ("plain_fixed", "ctbench_fixed", "ctbench_fixed_plain_tensors", "plain_loader", "ctbench_loader")
    blocks: dict[str, list[list[float]]] = {k: [] for k in keys}
    cpu_blocks: dict[str, list[list[float]]] = {k: [] for k in keys}
    compute: list[list[float]] = []
    waits: list[list[float]] = []

    def ctbench_block(key: str, batches) -> Any:
        timer = time_training_steps(module, cfg, batches, steps, warmup)
        blocks[key].append(timer.period(warmup))
        cpu_blocks[key].append(timer.cpu_period(warmup))
        return timer

    def plain_block(key: str, batches) -> None:
        wall, cpu = plain.run(batches, steps, warmup)
        blocks[key].append(wall)
        cpu_blocks[key].append(cpu)

    for r in range(args.rounds):
        log(f"overhead round {r + 1}/{args.rounds}: fixed batch (plain, ctbench, ctbench on plain tensors)")
        fixed_blocks = [lambda: plain_block("plain_fixed", lambda: [plain_tensors] * n),
                        lambda: ctbench_block("ctbench_fixed", FixedBatches(delivered, n)),
                        lambda: ctbench_block("ctbench_fixed_plain_tensors", FixedBatches(plain_tensors, n))]
        for block in fixed_blocks if r % 2 == 0 else reversed(fixed_blocks):
            block()
        log(f"overhead round {r + 1}/{args.rounds}: with data loading (plain loop + its loader, ctbench + its loader)")
        if r % 2 == 0:
            plain_block("plain_loader", lambda: own_loader)
        timer = ctbench_block("ctbench_loader", loader)
        if r % 2 == 1:
            plain_block("plain_loader", lambda: own_loader)
        compute.append(timer.compute(warmup))
        waits.append(timer.wait(warmup))
    pooled = {k: [s for block in v for s in block] for k, v in blocks.items()}
    med = {k: median(v) for k, v in pooled.items()}
    cpu = {k: median([s for block in v for s in block]) for k, v in cpu_blocks.items()}
    low = {k: round(min(v), 5) for k, v in pooled.items() if v}

    def per_round(a: str, b: str) -> list[float | None]:
        return [ratio(median(x), median(y)) for x, y in zip(blocks[a], blocks[b], strict=True)]

    out = {
        "workload": {"patch": list(cfg.dataset.patch_size_3d), "batch": int(cfg.dataset.batch_size_3d),
                     "batch_type_from_ctbench_loader": type(batch["image"]).__name__, "device": str(device),
                     "num_workers": workers, "steps_per_block": steps, "warmup_per_block": warmup,
                     "rounds": args.rounds, "torch_threads": torch.get_num_threads()},
        "median_step_s": med,
        "steps_per_s": {k: round(1 / v, 4) if v else None for k, v in med.items()},
        "mean_step_s": {k: round(statistics.fmean(v), 5) for k, v in pooled.items() if v},
        "min_step_s": low,
        "median_cpu_s_per_step": cpu,
        "ratio_cpu_without_loading": ratio(cpu["ctbench_fixed"], cpu["plain_fixed"]),
        "ratio_cpu_with_loading": ratio(cpu["ctbench_loader"], cpu["plain_loader"]),
        "ratio_min_without_loading": ratio(low.get("ctbench_fixed"), low.get("plain_fixed")),
        "ratio_min_with_loading": ratio(low.get("ctbench_loader"), low.get("plain_loader")),
        "ratio_without_loading": ratio(med["ctbench_fixed"], med["plain_fixed"]),
        "ratio_without_loading_plain_tensors": ratio(med["ctbench_fixed_plain_tensors"], med["plain_fixed"]),
        "ratio_with_loading": ratio(med["ctbench_loader"], med["plain_loader"]),
        "ratio_per_round": {"without_loading": per_round("ctbench_fixed", "plain_fixed"),
                            "without_loading_plain_tensors": per_round("ctbench_fixed_plain_tensors", "plain_fixed"),
                            "with_loading": per_round("ctbench_loader", "plain_loader")},
        "ctbench_loader_compute_median_s": median([s for b in compute for s in b]),
        "ctbench_loader_data_wait_median_s": median([s for b in waits for s in b]),
        "raw_seconds": {k: [[round(s, 4) for s in b] for b in v] for k, v in blocks.items()},
        "notes": "ctbench: its defaults (loss input checks, gradient clipping 12, pseudo-Dice every "
                 "log_every_n_steps, LambdaLR) with Adam lr 1e-3; plain loop: no clipping, no logging.",
    }
    state["model_samples_per_s"] = int(cfg.dataset.batch_size_3d) / med["plain_fixed"] if med["plain_fixed"] else None
    state["ctbench_model_samples_per_s"] = (int(cfg.dataset.batch_size_3d) / med["ctbench_fixed"]
                                            if med["ctbench_fixed"] else None)
    state["module"] = module
    loader = own_loader = None  # shut the workers down
    return out


# ---- (2) data pipeline -------------------------------------------------------------------------
def part_data(cfg, args, state: dict[str, Any]) -> dict[str, Any]:
    import gc

    from ctbench.data.datamodule import loader_workers
    from ctbench.engine.throughput import FixedBatches, build, measure_loader, time_training_steps

    setting = cfg.dataset.get("num_workers", "auto")
    configured = loader_workers(setting, on_gpu=False)
    out: dict[str, Any] = {}
    for workers in sorted({0, 1, configured}):  # auto (0 on CPU) against one worker process
        cfg.dataset.num_workers = workers
        log(f"data: loader alone with {workers} worker(s), {args.loader_epochs} epochs")
        module, data = build(cfg)
        loader, stats = measure_loader(data, args.loader_epochs)
        out[f"workers_{workers}"] = stats
        if "model_samples_per_s" not in state:
            batch = next(iter(loader))
            n = args.steps + args.warmup + 1
            timer = time_training_steps(module, cfg, FixedBatches(batch, n), args.steps, args.warmup)
            state["ctbench_model_samples_per_s"] = batch["image"].shape[0] / statistics.median(timer.period(args.warmup))
            state["model_samples_per_s"] = state["ctbench_model_samples_per_s"]
        del loader, module, data
        gc.collect()
    cfg.dataset.num_workers = setting
    model = state["ctbench_model_samples_per_s"]
    main = out[f"workers_{configured}"]
    out.update({
        "configured_workers": configured,
        "model_samples_per_s": round(model, 3),
        "first_epoch_samples_per_s": main["first_epoch"]["samples_per_s"],
        "later_epochs_samples_per_s": main.get("later_epochs", {}).get("samples_per_s"),
        "first_epoch_loader_to_model": round(main["first_epoch"]["samples_per_s"] / model, 3),
        "later_epochs_loader_to_model": round(main["later_epochs"]["samples_per_s"] / model, 3)
        if "later_epochs" in main else None,
        "cache_memory_mb": main["cache_memory_mb"], "cache_disk_mb": main["cache_disk_mb"],
        "dataset_disk_mb": main["dataset_disk_mb"], "cache_kind": main["cache_kind"],
    })
    return out


# ---- (3) inference -----------------------------------------------------------------------------
def part_inference(cfg, args, state: dict[str, Any], workdir: Path) -> dict[str, Any]:
    import nibabel as nib
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import UNet

    from ctbench.engine.inference import to_original_grid
    from ctbench.engine.predict import save_label
    from ctbench.engine.throughput import bench_device, build

    device = bench_device(cfg)
    module = state.get("module") or build(cfg)[0]
    module.to(device).eval()
    roi = tuple(int(r) for r in cfg.dataset.patch_size_3d)
    overlap, sw_batch = float(cfg.inference.overlap), int(cfg.inference.sw_batch_size_3d)
    plain = UNet(spatial_dims=3, in_channels=1, out_channels=int(cfg.dataset.num_classes), channels=(16, 32, 64, 128),
                 strides=(2, 2, 2), num_res_units=2).to(device).eval()
    if hasattr(module.model, "net"):  # the same weights (timing does not depend on them, outputs do)
        plain.load_state_dict(module.model.net.state_dict())
    volume = torch.rand(1, 1, *args.sw_volume, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def ctbench_sw() -> torch.Tensor:
        return module.segmenter.predictor(module.model, volume)

    @torch.no_grad()
    def monai_sw() -> torch.Tensor:
        logits = sliding_window_inference(volume, roi, sw_batch, plain, overlap=overlap, mode="gaussian")
        return torch.softmax(logits.float(), dim=1)

    timings: dict[str, list[float]] = {"ctbench": [], "monai": []}
    for fn in (ctbench_sw, monai_sw):
        fn()  # warm-up
    for r in range(args.sw_repeats):
        order = (("ctbench", ctbench_sw), ("monai", monai_sw)) if r % 2 == 0 else (("monai", monai_sw),
                                                                                   ("ctbench", ctbench_sw))
        for name, fn in order:
            sync()
            t0 = time.perf_counter()
            probs = fn()
            sync()
            timings[name].append(time.perf_counter() - t0)
    log(f"inference: sliding window ctbench {median(timings['ctbench'])} s, MONAI {median(timings['monai'])} s")
    # mapping back to an input grid and writing the NIfTI, timed apart from the network
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    shape = [int(s * 1.6) for s in args.sw_volume]
    original = nib.Nifti1Image(np.zeros(shape, np.int16), affine)
    resample, write = [], []
    out_dir = workdir / "inference"
    out_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(args.sw_repeats):
        t0 = time.perf_counter()
        label = to_original_grid(probs[0].cpu(), torch.as_tensor(np.diag([3.2, 3.2, 4.0, 1.0])), affine, shape)
        t1 = time.perf_counter()
        save_label(label, original, out_dir / "label.nii.gz")
        t2 = time.perf_counter()
        resample.append(t1 - t0)
        write.append(t2 - t1)
    module.train()
    c, m = median(timings["ctbench"]), median(timings["monai"])
    return {"volume": list(args.sw_volume), "roi": list(roi), "overlap": overlap, "sw_batch_size": sw_batch,
            "blend": "gaussian", "device": str(device),
            "ctbench_s": c, "monai_direct_s": m, "ratio_ctbench_to_monai": ratio(c, m),
            "resample_to_input_grid_s": median(resample), "input_grid": shape,
            "nifti_write_s": median(write), "raw_seconds": {k: [round(v, 4) for v in vs] for k, vs in timings.items()}}


def write_checkpoint(module, path: Path) -> Path:
    """A checkpoint ``ctbench predict`` accepts: weights, the run config, normalisation statistics."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0,
                "ctbench_zscore": None}, path)
    return path


def timed(command: Sequence[str], cwd: Path, timeout: float = 900) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc


def part_predict(cfg, args, state: dict[str, Any], workdir: Path) -> dict[str, Any]:
    import nibabel as nib

    from ctbench.engine.build import build_datamodule
    from ctbench.engine.throughput import build

    module = state.get("module") or build(cfg)[0]
    ckpt = write_checkpoint(module.cpu(), workdir / "predict" / "model.ckpt")
    data = build_datamodule(cfg, 1)
    data.setup()
    names = data.split["test"] + data.split["val"]
    cases = [Path(data.cases[c]["image"]) for c in names][: args.predict_cases]
    folders = {}
    for n in sorted({1, len(cases)}):
        folder = workdir / "predict" / f"input_{n}"
        folder.mkdir(parents=True, exist_ok=True)
        for image in cases[:n]:
            target = folder / image.name
            if not target.exists():
                os.symlink(image.resolve(), target)
        folders[n] = folder
    totals: dict[int, list[float]] = {n: [] for n in folders}
    for r in range(args.predict_repeats):
        for n, folder in folders.items():
            out = workdir / "predict" / f"output_{n}_{r}"
            seconds, _ = timed([*ctbench_command(), "predict", f"ckpt_path={ckpt}", f"input={folder}",
                                f"output_dir={out}", "progress_bar=false",
                                f"hydra.run.dir={workdir / 'predict' / f'run_{n}_{r}'}"], cwd=workdir)
            totals[n].append(seconds)
            log(f"predict: {n} case(s) in {seconds:.1f} s")
    n_max = max(folders)
    total_max, total_one = median(totals[n_max]), median(totals[1])
    marginal = (total_max - total_one) / (n_max - 1) if n_max > 1 else None
    per_case = total_max / n_max
    startup = total_one - marginal if marginal is not None else None
    q = NNUNET_QUOTED
    nn_no_mirror = (q["startup_s"] + q["per_case_s_no_mirroring"] * n_max) / n_max
    nn_mirror = (q["startup_s"] + q["per_case_s_mirroring"] * n_max) / n_max
    shapes = [list(nib.load(str(p)).shape) for p in cases]
    return {"cases": n_max, "case_shapes": shapes, "roi": list(cfg.dataset.patch_size_3d),
            "total_s": total_max, "total_one_case_s": total_one, "per_case_s": round(per_case, 3),
            "marginal_per_case_s": round(marginal, 3) if marginal is not None else None,
            "startup_s": round(startup, 3) if startup is not None else None,
            "nnunet_quoted": {**q, "per_case_s_for_this_folder_no_mirroring": round(nn_no_mirror, 3),
                              "per_case_s_for_this_folder_mirroring": round(nn_mirror, 3),
                              "source": "issue 7 (nnUNetv2_predict, 64^3 cases, this CPU); not measured here"},
            "speedup_vs_nnunet_no_mirroring": ratio(nn_no_mirror, per_case),
            "speedup_vs_nnunet_mirroring": ratio(nn_mirror, per_case),
            "raw_seconds": {str(k): [round(v, 3) for v in vs] for k, vs in totals.items()}}


# ---- (5) start-up ------------------------------------------------------------------------------
def part_startup(args, workdir: Path) -> dict[str, Any]:
    results = {}
    for name, extra in (("help", ["--help"]), ("train_cfg_job", ["train", "--cfg", "job"])):
        seconds = []
        for _ in range(args.startup_repeats):
            s, _ = timed([*ctbench_command(), *extra], cwd=workdir, timeout=120)
            seconds.append(s)
        results[name] = {"median_s": median(seconds), "seconds": [round(s, 3) for s in seconds]}
        log(f"startup: ctbench {' '.join(extra)}: {results[name]['median_s']} s")
    results["targets_s"] = {"help": 0.5, "train_cfg_job": 2.0}
    return results


# ---- (6) memory --------------------------------------------------------------------------------
def part_memory(args, workdir: Path, cwd: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """``ctbench train`` for ``--leak-epochs`` epochs with validation every epoch; RSS sampled every
    0.2 s and read at every epoch end (when ``checkpoints/last.ckpt`` is rewritten)."""
    from ctbench.provenance import memory_now

    run = workdir / "memory" / "train"
    shutil.rmtree(run, ignore_errors=True)
    run.parent.mkdir(parents=True, exist_ok=True)
    command = [*ctbench_command(), "train", *overrides, f"trainer.max_epochs={args.leak_epochs}",
               "trainer.check_val_every_n_epoch=1", "progress_bar=false", f"hydra.run.dir={run}"]
    log(f"memory: {' '.join(command[len(ctbench_command()):])}")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    stdout = open(workdir / "memory" / "train.log", "w")  # noqa: SIM115
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT, env=env)
    samples: list[dict[str, Any]] = []
    epochs: list[dict[str, Any]] = []
    done = threading.Event()

    def sample() -> None:
        last = run / "checkpoints" / "last.ckpt"
        seen = None
        while not done.is_set():
            now = memory_now(proc.pid)
            if now["rss_mb"] is not None:
                samples.append({"t": round(time.perf_counter() - t0, 2), **now})
            try:
                mtime = last.stat().st_mtime
            except OSError:
                mtime = None
            if mtime is not None and mtime != seen:
                seen = mtime
                epochs.append({"epoch": len(epochs) + 1, "t": round(time.perf_counter() - t0, 2), **now})
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    thread.join()
    stdout.close()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"ctbench train exited {proc.returncode}: see {workdir / 'memory' / 'train.log'}")
    rss = [e["rss_mb"] for e in epochs]
    growth = None
    if len(rss) >= 3:
        # least-squares slope over epochs 2.. (epoch 1 holds the one-off allocations)
        xs = list(range(2, len(rss) + 1))
        ys = rss[1:]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        growth = round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
                       / sum((x - mx) ** 2 for x in xs), 2)
    summary = json.loads((run / "report" / "summary.json").read_text())
    peak = max(samples, key=lambda x: x["rss_mb"] or 0, default=None)
    last_epoch_t = epochs[-1]["t"] if epochs else None
    return {
        "command": "ctbench " + " ".join(command[len(ctbench_command()):]),
        "wall_s": round(wall, 1), "train_seconds": summary.get("train_seconds"),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "peak_sampled_tree_pss_mb": max((s["tree_pss_mb"] or 0 for s in samples), default=None),
        "peak_sampled_tree_rss_mb": max((s["tree_rss_mb"] or 0 for s in samples), default=None),
        "rss_at_epoch_end_mb": rss, "tree_pss_at_epoch_end_mb": [e["tree_pss_mb"] for e in epochs],
        "growth_mb_per_epoch_after_epoch_1": growth,
        "epoch_samples": epochs, "samples": len(samples),
        "peak_sample": peak, "last_epoch_end_s": last_epoch_t,
        "peak_phase": None if peak is None or last_epoch_t is None else (
            "after the last training epoch (validation/test/report)" if peak["t"] > last_epoch_t
            else "during training"),
    }


# ---- table -------------------------------------------------------------------------------------
def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ctbench vs plain PyTorch + MONAI (scripts/benchmark.py)")
    for col, justify in (("comparison", "left"), ("ctbench", "right"), ("reference", "right"),
                         ("ratio", "right"), ("target", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    o = result.get("overhead")
    if o:
        m = o["median_step_s"]
        table.add_row("(1) train step, fixed batch [s]", f"{m['ctbench_fixed']:.3f}", f"{m['plain_fixed']:.3f} plain",
                      f"{o['ratio_without_loading']:.3f}", "<= 1.05")
        table.add_row("    same, ctbench fed plain tensors [s]", f"{m['ctbench_fixed_plain_tensors']:.3f}",
                      f"{m['plain_fixed']:.3f} plain", f"{o['ratio_without_loading_plain_tensors']:.3f}", "")
        table.add_row("(1) train step, with data loading [s]", f"{m['ctbench_loader']:.3f}",
                      f"{m['plain_loader']:.3f} plain", f"{o['ratio_with_loading']:.3f}", "<= 1.05")
    d = result.get("data")
    if d:
        later = d["later_epochs_samples_per_s"]
        table.add_row("(2) loader, first epoch incl. caching [samples/s]", f"{d['first_epoch_samples_per_s']:.2f}",
                      f"{d['model_samples_per_s']:.2f} model", f"{d['first_epoch_loader_to_model']:.2f}", "")
        if later:
            table.add_row("(2) loader, later epochs [samples/s]", f"{later:.2f}", f"{d['model_samples_per_s']:.2f} model",
                          f"{d['later_epochs_loader_to_model']:.2f}", ">= 2")
        table.add_row("(2) cache footprint [MB]", f"{d['cache_memory_mb']:.1f} mem", f"{d['dataset_disk_mb']} raw",
                      "", f"{d['cache_disk_mb']} MB cache dir")
    i = result.get("inference")
    if i:
        table.add_row(f"(3) sliding window {'x'.join(map(str, i['volume']))} [s]", f"{i['ctbench_s']:.3f}",
                      f"{i['monai_direct_s']:.3f} MONAI", f"{i['ratio_ctbench_to_monai']:.3f}", "<= 1.0")
        table.add_row("    map to input grid / write NIfTI [s]", f"{i['resample_to_input_grid_s']:.3f}",
                      f"{i['nifti_write_s']:.3f}", "", "counted apart")
    p = result.get("predict")
    if p:
        table.add_row(f"(3) ctbench predict, {p['cases']} cases [s/case]", f"{p['per_case_s']:.2f}",
                      f"{p['nnunet_quoted']['per_case_s_for_this_folder_no_mirroring']:.2f} nnU-Net*",
                      f"{p['speedup_vs_nnunet_no_mirroring']:.2f}x faster", ">= 2x")
        if p["startup_s"] is not None:
            table.add_row("    start-up / marginal per case [s]", f"{p['startup_s']:.2f}",
                          f"{p['marginal_per_case_s']:.2f}", "", "*quoted in issue 7")
    s = result.get("startup")
    if s:
        table.add_row("(5) ctbench --help [s]", f"{s['help']['median_s']:.2f}", "", "", "< 0.5")
        table.add_row("(5) ctbench train --cfg job [s]", f"{s['train_cfg_job']['median_s']:.2f}", "", "", "< 2")
    mem = result.get("memory")
    if mem:
        table.add_row("(6) peak RSS, ctbench train [MB]", f"{mem['peak_rss_mb']:.0f}",
                      f"{mem['peak_sampled_tree_pss_mb']:.0f} PSS+workers", "", "")
        table.add_row("(6) RSS at epoch ends [MB]", " ".join(f"{r:.0f}" for r in mem["rss_at_epoch_end_mb"]), "",
                      f"{mem['growth_mb_per_epoch_after_epoch_1']} MB/epoch", "no growth")
    if "peak_rss_mb" in result:
        table.add_row("(6) peak RSS, this benchmark [MB]", f"{result['peak_rss_mb']:.0f}", "", "", "")
    mach = result["machine"]
    table.caption = (f"{mach['cpu']}, {mach['usable_cpus']} CPU(s), {mach['torch_threads']} torch threads, "
                     f"load at start {mach['load_average']}; medians; ratio = ctbench / reference")
    Console(width=max(120, shutil.get_terminal_size().columns)).print(table)


# ---- main --------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for part in PARTS:
        parser.add_argument(f"--{part}", action="store_true", help=f"run part '{part}' (default: all parts)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (debug=fast phantom, 32^3 patches, "
                                                             "2 steps): checks that every part runs")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per block (default 8, quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per block (default 2, quick 1)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 2, quick 1)")
    parser.add_argument("--loader-epochs", type=int, default=None, help="loader epochs (default 3, quick 2)")
    parser.add_argument("--sw-volume", type=int, nargs=3, default=None, help="sliding-window volume (128 128 96)")
    parser.add_argument("--sw-repeats", type=int, default=None, help="sliding-window repeats (default 5, quick 2)")
    parser.add_argument("--predict-cases", type=int, default=4, help="volumes in the predict folder (default 4)")
    parser.add_argument("--predict-repeats", type=int, default=1, help="repeats of each predict run (default 1)")
    parser.add_argument("--startup-repeats", type=int, default=None, help="start-up repeats (default 5, quick 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice); 1 makes CPU seconds per step a "
                             "load-independent measure of work on a shared machine")
    parser.add_argument("--leak-epochs", type=int, default=5, help="epochs of the memory run (default 5)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Hydra override for the ctbench side (repeatable)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for checkpoints, predictions and runs (default outputs/benchmark/TIMESTAMP)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default WORKDIR/benchmark.json)")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"steps": (8, 2), "warmup": (2, 1), "rounds": (2, 1), "loader_epochs": (3, 2),
                "sw_volume": ([128, 128, 96], [48, 48, 40]), "sw_repeats": (5, 2), "startup_repeats": (5, 1)}
    for key, (full, tiny) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, tiny if quick else full)
    if quick:
        args.predict_cases = min(args.predict_cases, 2)
        args.leak_epochs = min(args.leak_epochs, 3)
    args.parts = [p for p in PARTS if getattr(args, p)] or list(PARTS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    import lightning.pytorch  # noqa: F401  (sets its loggers up; quieted below)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)

    import torch

    from ctbench.atomic import atomic_write_json
    from ctbench.provenance import git_commit, machine_info, package_versions, peak_rss_mb

    if args.threads:
        torch.set_num_threads(args.threads)

    workdir = (args.workdir or Path("outputs") / "benchmark" / time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    matched = [o for o in MATCHED if not (args.quick and o.startswith("dataset.patch_size_3d="))]
    overrides = (QUICK if args.quick else []) + matched + list(args.override)
    cfg = compose(overrides)
    data_overrides = [o for o in args.override if o.startswith(("paths.", "dataset"))]
    memory_overrides = (["debug=fast"] if args.quick else []) + data_overrides
    result: dict[str, Any] = {
        "benchmark": "scripts/benchmark.py", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick, "parts": args.parts, "ctbench_overrides": overrides,
        "machine": machine_info(), "versions": package_versions(),
        "git_commit": git_commit(), "workdir": str(workdir),
    }
    state: dict[str, Any] = {}
    start = time.perf_counter()
    cwd = Path.cwd()
    if "overhead" in args.parts:
        result["overhead"] = part_overhead(cfg, args, state)
    if "data" in args.parts:
        result["data"] = part_data(cfg, args, state)
    if "inference" in args.parts:
        result["inference"] = part_inference(cfg, args, state, workdir)
    if "predict" in args.parts:
        result["predict"] = part_predict(cfg, args, state, workdir)
    if "startup" in args.parts:
        result["startup"] = part_startup(args, cwd)
    if "memory" in args.parts:
        result["memory"] = part_memory(args, workdir, cwd, memory_overrides)
    result["peak_rss_mb"] = peak_rss_mb()["self_mb"]
    result["wall_s"] = round(time.perf_counter() - start, 1)
    out = args.out or workdir / "benchmark.json"
    atomic_write_json(out, result)
    print_table(result)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
