#!/usr/bin/env python
"""The measured parts (1)-(3) of ``scripts/benchmark.py``: ctbench's training step, data pipeline and sliding
window against a plain PyTorch + MONAI loop written here (the baseline measured in the same run).

Imported by ``scripts/benchmark.py``; see its docstring for what each part measures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


# ---- helpers -----------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {message}", flush=True)


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 5) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


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
