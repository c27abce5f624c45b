"""Does a study run replay from its recorded config today? Trains each run's ``resolved_config.yaml`` (its seed,
its learning-rate schedule, its validation cadence) up to its first validation and compares the validation mean
Dice with the one the run recorded (``convergence.history`` in ``report/summary.json``, 5 decimals).

The first validation is where a run's training stream is still the one its seed started (before commit
ba3ec25 an evaluation loader restarted it there: ``scripts/commit_replay_audit.py``), so an equal value says the
run's data, code path and numerics are today's, a different one that something its config does not record
differed: a resumed run (before commit ba3ec25 a resume restarted the stream from the seed) or another kind of
CPU (float kernels differ between CPUs; ``predict_hardware`` in the run's ``summary.json`` names the CPU it was
tested on, and since 6 Dec 2026 ``provenance.json`` the one it was trained on). About 1-2 minutes a 2D run; runs started from a checkpoint of another run (C10's transfer) are skipped.

    PYTHONPATH=src .venv/bin/python scripts/first_validation_replay.py multirun/claims/unet-dice-2d-seed2 ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import lightning.pytorch as pl
import torch
from init_vs_data_seed import StopAfter  # scripts/ is on the path of a script run from it
from omegaconf import OmegaConf

from ctbench.engine.build import build_datamodule, build_module, build_trainer
from ctbench.provenance import machine_info


def first_validation(run: Path) -> tuple[int, float]:
    """The epoch and validation mean Dice of ``run``'s first validation, replayed with today's code."""
    cfg = OmegaConf.load(run / "resolved_config.yaml")
    cfg.progress_bar = False
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)  # as ctbench train, before any build
    module = build_module(cfg)
    data = build_datamodule(cfg, int(getattr(module.model, "size_divisor", 1)), module.loss_fn)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(cfg, Path(tmp))
        epochs = int(cfg.trainer.get("check_val_every_n_epoch") or 1)
        trainer.callbacks.append(StopAfter(epochs))
        trainer.fit(module, datamodule=data)
    return epochs - 1, float(trainer.callback_metrics["val/mean_dice"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (resolved_config.yaml, report/summary.json)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"replayed on: {machine_info()['cpu']}")
    print("| run | trained (commit date) | its CPU (predict_hardware) | first validation: epoch, recorded | "
          "replayed today | equal |")
    print("|---|---|---|---|---:|---|")
    for run in args.runs:
        if not (run / "report" / "summary.json").is_file() or not (run / "resolved_config.yaml").is_file():
            print(f"| {run} | | | no complete run there (report/summary.json, resolved_config.yaml) | | |", flush=True)
            continue
        summary = json.loads((run / "report" / "summary.json").read_text())
        cfg = OmegaConf.load(run / "resolved_config.yaml")
        if OmegaConf.select(cfg, "model.pretrained"):  # its start is another run's weights, not in git
            print(f"| {run.name} | | | starts from another run's checkpoint: skipped | | |", flush=True)
            continue
        epoch, recorded = summary["convergence"]["history"][0]
        date = subprocess.run(["git", "show", "-s", "--format=%ci", summary["git_commit"]], capture_output=True,
                              text=True).stdout[:16]
        replay_epoch, replayed = first_validation(run)
        equal = replay_epoch == epoch and round(replayed, 5) == recorded
        cpu = str(summary.get("predict_hardware", "")).split(",")[0].removeprefix("CPU ")
        print(f"| {run.name} | {date} | {cpu} | {epoch}, {recorded:.5f} | {replayed:.5f} | "
              f"{'yes' if equal else '**no**'} |", flush=True)


if __name__ == "__main__":
    main()
