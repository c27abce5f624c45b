#!/usr/bin/env python
"""Seconds per nnU-Net v2 training iteration on this machine (default 3d_fullres plan and trainer).

``scripts/time_to_dice.py`` may stop nnU-Net before its first epoch ends (250 iterations; it writes no
checkpoint before that), which leaves its Dice at the budget undefined. This script times nnU-Net's own
``train_step`` on batches from its own data loader (the plan made by ``time_to_dice.py``), so the length
of one epoch on this CPU can be stated. Run it with the Python that has ``nnunetv2``:

    /path/to/nnunet-venv/bin/python scripts/nnunet_iteration_time.py --nnunet-base WORK/nnunet --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nnunet-base", type=Path, required=True, help="folder with raw/, preprocessed/, results/")
    parser.add_argument("--dataset", default="501")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)
    base = args.nnunet_base.resolve()
    os.environ.update({"nnUNet_raw": str(base / "raw"), "nnUNet_preprocessed": str(base / "preprocessed"),
                       "nnUNet_results": str(base / "results_iteration_probe")})
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(args.dataset, "3d_fullres", 0, device=torch.device("cpu"))
    trainer.on_train_start()  # initialise, data loaders (with nnU-Net's augmentation workers), logging
    trainer.on_train_epoch_start()
    seconds = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        trainer.train_step(next(trainer.dataloader_train))
        if i >= args.warmup:
            seconds.append(time.perf_counter() - start)
    per_step = statistics.median(seconds)
    result = {"seconds_per_iteration": [round(s, 2) for s in seconds], "median_s": round(per_step, 2),
              "iterations_per_epoch": trainer.num_iterations_per_epoch,
              "epoch_estimate_min": round(per_step * trainer.num_iterations_per_epoch / 60, 1),
              "patch_size": list(trainer.configuration_manager.patch_size), "batch_size": trainer.batch_size,
              "torch_threads": torch.get_num_threads()}
    print(json.dumps(result))
    os._exit(0)  # nnU-Net's background augmentation workers would keep the process alive


if __name__ == "__main__":
    raise SystemExit(main())
