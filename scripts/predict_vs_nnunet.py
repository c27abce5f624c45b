#!/usr/bin/env python
"""Whole-folder prediction: ``ctbench predict`` against ``nnUNetv2_predict`` on the same volumes (issue 7, figure 3).

Both tools run as their users run them (a fresh process, start-up included) on the same folder of
NIfTI volumes, interleaved round by round; the table gives wall seconds per case (median over rounds).
nnU-Net runs its 3d_fullres plan of the same phantom (made by ``scripts/time_to_dice.py``) with
``-device cpu -npp 1 -nps 1`` (one preprocessing and one export process, like ctbench) with and without
its test-time mirroring; ctbench runs a trained ``best.ckpt`` with its defaults (no mirroring, overlap
0.25) and with nnU-Net's overlap (0.5).

Network weights do not change the time: when nnU-Net's fold folder has no ``checkpoint_final.pth``
(its training did not finish here), the script writes ``checkpoint_timing.pth`` from nnU-Net's own
freshly initialised trainer (with its mirroring axes), so the timing needs no finished nnU-Net training.

    PATH=/path/to/nnunet-venv/bin:$PATH .venv/bin/python scripts/predict_vs_nnunet.py \\
        --nnunet-base outputs/time_to_dice/T/nnunet --ckpt outputs/.../checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

DATASET_ID = 501
DATASET_NAME = f"Dataset{DATASET_ID}_CTBenchPhantom"

MAKE_CHECKPOINT = """
import torch
from nnunetv2.run.run_training import get_trainer_from_args
trainer = get_trainer_from_args("{dataset}", "3d_fullres", 0, device=torch.device("cpu"))
trainer.initialize()
trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()  # sets the mirroring axes prediction uses
trainer.save_checkpoint("{path}")
"""


def log(message: str) -> None:
    print(f"[predict-vs-nnunet {time.strftime('%H:%M:%S')}] {message}", flush=True)


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nnunet-base", type=Path, required=True, help="folder with raw/, preprocessed/, results/")
    parser.add_argument("--ckpt", type=Path, required=True, help="ctbench best.ckpt of the default config")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--all-rounds-mirroring", action="store_true",
                        help="time nnU-Net's default mirroring in every round (else in the first only)")
    parser.add_argument("--workdir", type=Path, default=Path("outputs/predict_vs_nnunet"))
    parser.add_argument("--out", type=Path, default=None, help="JSON (default WORKDIR/predict_vs_nnunet.json)")
    args = parser.parse_args(argv)

    nnunet_predict = shutil.which("nnUNetv2_predict")
    if nnunet_predict is None:
        print("nnUNetv2_predict is not on PATH: install nnunetv2 (`pip install torch==2.13.0 nnunetv2`) and put its "
              "bin/ folder on PATH")
        return 0
    base = args.nnunet_base.resolve()
    env = {**os.environ, "nnUNet_raw": str(base / "raw"), "nnUNet_preprocessed": str(base / "preprocessed"),
           "nnUNet_results": str(base / "results"), "PYTHONWARNINGS": "ignore"}
    images = base / "raw" / DATASET_NAME / "imagesTs"
    cases = sorted(images.glob("*_0000.nii.gz"))
    fold = base / "results" / DATASET_NAME / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"
    checkpoint = fold / "checkpoint_final.pth"
    made = not checkpoint.exists()
    if made:
        checkpoint = fold / "checkpoint_timing.pth"
        log(f"no checkpoint_final.pth in {fold}: writing nnU-Net's freshly initialised network to {checkpoint.name} "
            "(timing only)")
        python = str(Path(nnunet_predict).parent / "python")
        code = MAKE_CHECKPOINT.format(dataset=DATASET_ID, path=checkpoint)
        subprocess.run([python, "-c", code], env=env, check=True, capture_output=True)
    ctbench = str(Path(sys.executable).parent / "ctbench")
    work = args.workdir.resolve()
    commands = {
        "ctbench_default": [ctbench, "predict", f"ckpt_path={args.ckpt.resolve()}", f"input={images}",
                            f"output_dir={work / 'ctbench'}", "progress_bar=false"],
        "ctbench_overlap_0.5": [ctbench, "predict", f"ckpt_path={args.ckpt.resolve()}", f"input={images}",
                                f"output_dir={work / 'ctbench_05'}", "progress_bar=false", "inference.overlap=0.5"],
        "nnunet_no_mirroring": [nnunet_predict, "-i", str(images), "-o", str(work / "nnunet"), "-d", str(DATASET_ID),
                                "-c", "3d_fullres", "-f", "0", "-device", "cpu", "-chk", checkpoint.name,
                                "--disable_tta", "-npp", "1", "-nps", "1"],
        "nnunet_default_mirroring": [nnunet_predict, "-i", str(images), "-o", str(work / "nnunet_tta"), "-d",
                                     str(DATASET_ID), "-c", "3d_fullres", "-f", "0", "-device", "cpu", "-chk",
                                     checkpoint.name, "-npp", "1", "-nps", "1"],
    }
    seconds: dict[str, list[float]] = {k: [] for k in commands}
    for r in range(args.rounds):
        order = list(commands) if r % 2 == 0 else list(reversed(commands))
        for name in order:
            if name == "nnunet_default_mirroring" and seconds[name] and not args.all_rounds_mirroring:
                continue  # 8 mirrored passes: ~8x the others; one round is enough to place it
            shutil.rmtree(work / name, ignore_errors=True)
            s = timed(commands[name], env)
            seconds[name].append(round(s, 2))
            log(f"round {r + 1}/{args.rounds}: {name} {s:.1f} s for {len(cases)} case(s)")
    per_case = {k: round(statistics.median(v) / len(cases), 3) for k, v in seconds.items()}
    result = {
        "cases": [c.name for c in cases], "rounds": args.rounds, "seconds": seconds,
        "median_s_per_case": per_case,
        "nnunet_checkpoint": "freshly initialised by this script (timing only)" if made else str(checkpoint),
        "ratio_nnunet_no_mirroring_to_ctbench_default": round(per_case["nnunet_no_mirroring"]
                                                              / per_case["ctbench_default"], 3),
        "ratio_nnunet_no_mirroring_to_ctbench_overlap_0.5": round(per_case["nnunet_no_mirroring"]
                                                                  / per_case["ctbench_overlap_0.5"], 3),
        "ratio_nnunet_mirroring_to_ctbench_default": round(per_case["nnunet_default_mirroring"]
                                                           / per_case["ctbench_default"], 3),
        "commands": {k: " ".join(v) for k, v in commands.items()},
    }
    out = args.out or work / "predict_vs_nnunet.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for name, value in per_case.items():
        print(f"{name:28s} {value:7.2f} s/case")
    print(f"nnU-Net (no mirroring) / ctbench (default): {result['ratio_nnunet_no_mirroring_to_ctbench_default']:.2f}x; "
          f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
