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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_parts import compose, log, median, part_data, part_inference, part_overhead, ratio  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PARTS = ("overhead", "data", "inference", "predict", "startup", "memory")

#: nnU-Net v2 figures quoted in issue 7 for this 2-core CPU (64^3 cases): not measured by this script.
NNUNET_QUOTED = {"startup_s": 8.0, "per_case_s_no_mirroring": 1.0, "per_case_s_mirroring": 7.7}

#: ctbench settings that make its workload the plain loop's: batch 2 of 96^3, Adam.
MATCHED = ["dataset.patch_size_3d=[96,96,96]", "dataset.batch_size_3d=2", "dataset.samples_per_volume=2",
           "optim.optimizer._target_=torch.optim.Adam", "optim.optimizer.lr=0.001", "optim.optimizer.weight_decay=0",
           "optim.scheduler.min_factor=1.0", "optim.scheduler.warmup_steps=0", "progress_bar=false"]
QUICK = ["debug=fast", "dataset.patch_size_3d=[32,32,32]"]


def ctbench_command() -> list[str]:
    """The installed ``ctbench`` console script beside this Python, else ``python -m ctbench.cli``."""
    script = Path(sys.executable).parent / "ctbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ctbench.cli"]


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
                                "trust.allow=[torch.optim.Adam]",  # the plain loop's optimiser, not a config's
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
