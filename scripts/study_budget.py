#!/usr/bin/env python
"""The CPU study's job time, estimated per job from measured per-network costs: where the time goes.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/study_cost.py > /tmp/costs.txt     # s/step and s/volume
    .venv/bin/ctbench study run --dry-run > /tmp/plan.txt                          # the jobs
    .venv/bin/python scripts/study_budget.py /tmp/costs.txt /tmp/plan.txt [--markdown]

A training job of network N for E epochs costs ``E x 16 x step(N) + (E / 5) x 8 x volume(N)`` (validation:
cached volumes, Dice only) ``+ T x (volume(N) + IO)`` (testing) plus ``SETUP`` seconds (T test volumes: 40, or 48 on ``dataset=phantom_phase``);
an eval job its volumes (8 on ``split=val``, 40 on the test set) plus the dense CRF where it applies. A loss
arm's seed-0 job costs nothing: it is its learning-rate grid's run at the chosen rate, linked in (before 3 Dec
22:15 it was counted as a training, about 3.5 h of job time too many over the whole study).
``step``/``volume`` come from ``scripts/study_cost.py``, mapped onto a real run by :data:`STEP_SCALE`,
:data:`STEP_OVERHEAD_SECONDS` and :data:`VOLUME_SCALE`, fitted on the study's own finished jobs (their CPU
times in ``multirun/claims/study_jobs.json``).

What is still to run, and for how long, is ``ctbench study run --dry-run``'s last line: it reads each network's
own finished jobs (measured seconds per epoch) instead of these fitted costs, and supersedes the calibrated
total below (:data:`MEASURED_RATIO`, fitted on 3 Dec). This script stays the split of the whole study by network
and the estimate for networks with no finished job.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf

#: A real run's training step / the benchmark's, plus a fixed cost per step (the data pipeline, Lightning's
#: hooks): fitted on the CPU times of the study's own jobs of 2 Dec (study_jobs.json), DeepLab v1 at 100 epochs
#: (18.3 and 19.1 min; 0.379 s benchmark, ~0.44 s real) and DeepLab v2 at 60 (4.3 and 4.4 min; 0.098 s, ~0.16 s).
STEP_SCALE = 1.0
STEP_OVERHEAD_SECONDS = 0.06
#: A real validation/test pass / the benchmark's: the 40-volume test evaluations of DeepLab v1 (2.2 and 2.5 min
#: CPU with their 30 s of setup) against the benchmark's 2.88 s per volume.
VOLUME_SCALE = 0.63
#: Per volume beside the network: loading, resampling to the file's grid, metrics (profile of `ctbench eval`).
IO_SECONDS = 0.74
#: Per job: imports, Hydra, caching the dataset.
SETUP_SECONDS = 30.0
#: The CPU preset: ``study.epochs``, and for the networks of ``study.epochs_by_model`` their own epochs.
PRESET = Path(__file__).resolve().parents[1] / "configs" / "study" / "cpu.yaml"
#: Measured / estimated wall time per job, per network: the study's own finished jobs (``study_jobs.json``, two
#: jobs side by side, part of the time beside a test suite) against this estimate at the same epochs, 3 Dec
#: 22:20 (DRINet, DynUNet, Swin UNETR and FC-DenseNet from their 60-epoch runs, the U-Net over 25 runs of
#: 15-250 epochs). The per-network costs of ``study_cost.py`` were measured under other loads, so the slow 2D
#: networks come out up to 1.8x too high; the calibrated total applies these ratios (1 for a network not listed).
MEASURED_RATIO = {"unet": 0.93, "unet@3": 1.20, "attention_unet": 1.08, "cascaded_fcn": 0.98, "deeplabv1": 1.22,
                  "deeplabv2": 1.23, "deeplabv3": 1.35, "deeplabv3p": 1.44, "drinet": 0.62, "dynunet": 0.66,
                  "fcdensenet": 0.57, "fcn8s": 1.25, "fcn16s": 0.97, "fcn32s": 0.93, "segnet": 1.57,
                  "swinunetr": 0.83}
#: Dense CRF per volume: DeepLab v1's test evaluations with the CRF against without (3.8 - 2.2 and 3.6 - 2.5 min
#: CPU for 40 volumes, 2 Dec).
CRF_SECONDS = 2.0


def read_costs(path: str) -> dict[str, tuple[float, float]]:
    costs = {}
    for line in open(path):
        parts = line.split()
        if len(parts) == 4 and re.fullmatch(r"[\d.]+", parts[2]):
            costs[parts[0]] = (float(parts[2]), float(parts[3]))
    return costs


def main() -> None:
    costs, plan = read_costs(sys.argv[1]), open(sys.argv[2]).read().splitlines()
    study = OmegaConf.load(PRESET).study  # its epochs only: study.sources refers to the rest of the config
    short, by_model = int(study.epochs), {m: int(study.epochs_by_model[m]) for m in study.epochs_by_model}
    rows: dict[str, list[float]] = defaultdict(list)
    calibrated = 0.0
    missing = set()
    linked = 0
    for line in plan:
        if "ctbench train" in line and " seed=0 " in line and "claims_tuning" not in line and "=<the best of" in line:
            linked += 1  # a loss arm's seed 0 is its grid run at the chosen rate, linked in: not trained again
            continue
        if "ctbench train" in line or "ctbench eval" in line:
            folder = re.search(r"hydra\.run\.dir=(\S+)", line).group(1).rsplit("/", 1)[-1]
            model = folder.split("-")[0]
            key = model + ("@3" if "-3d-" in folder else "")
            if key not in costs:
                missing.add(key)
                continue
            step, volume = costs[key]
            per_volume = volume * VOLUME_SCALE + IO_SECONDS
            if "ctbench train" in line:
                tagged = re.search(r"-e(\d+)-", folder)  # C10's runs carry their epochs in the tag
                planned = re.search(r"  \((\d+) epochs\)", line)  # the dry run prints each training's epochs
                epochs = int(planned.group(1)) if planned else int(tagged.group(1)) if tagged else by_model.get(model, short)
                tests = 48 if "-phase" in folder else 40
                validation = epochs // 5 * 8 * volume * VOLUME_SCALE  # cached volumes, Dice only: no IO
                seconds = epochs * 16 * (step * STEP_SCALE + STEP_OVERHEAD_SECONDS) + validation + tests * per_volume + SETUP_SECONDS
                group = f"{key}{f' (C10, {epochs} epochs)' if tagged else ''}"
                group += " (LR grid)" if "claims_tuning" in line and "eval" not in line else ""
            else:
                n = 8 if "split=val" in line else 40
                seconds = n * (per_volume + (CRF_SECONDS if "postprocess=crf" in line else 0.0)) + SETUP_SECONDS
                group = f"eval {'validation (CRF grid)' if n == 8 else 'test'}"
            rows[group].append(seconds)
            calibrated += seconds * (MEASURED_RATIO.get(key, 1.0) if "ctbench train" in line else 1.0)
    total = sum(sum(v) for v in rows.values())
    jobs = sum(len(v) for v in rows.values())
    ordered = sorted(rows.items(), key=lambda kv: -sum(kv[1]))
    if "--markdown" in sys.argv:  # the table of docs/survey-reproduction.md
        print("| jobs | count | min per job | job min | share |\n|---|---:|---:|---:|---:|")
        for group, values in ordered:
            print(f"| {group} | {len(values)} | {sum(values) / len(values) / 60:.1f} | {sum(values) / 60:.0f} | "
                  f"{sum(values) / total:.0%} |")
        print(f"| **all** | **{jobs}** | | **{total / 60:.0f}** | {total / 3600:.1f} h; {total / 7200:.1f} h with "
              "`--jobs 2` |")
    else:
        print(f"{'jobs':<34}{'count':>6}{'min/job':>9}{'job min':>9}{'share':>7}")
        for group, values in ordered:
            print(f"{group:<34}{len(values):>6}{sum(values) / len(values) / 60:>9.1f}{sum(values) / 60:>9.0f}"
                  f"{sum(values) / total:>7.0%}")
        print(f"{'all':<34}{jobs:>6}{'':>9}{total / 60:>9.0f}   = {total / 3600:.1f} h of job time, "
              f"{total / 7200:.1f} h with --jobs 2")
    print(f"calibrated on the study's own jobs (MEASURED_RATIO): {calibrated / 3600:.1f} h of job time, "
          f"{calibrated / 7200:.1f} h with --jobs 2")
    if linked:
        print(f"not counted: {linked} loss arms' seed-0 runs, each its learning-rate grid run at the chosen rate "
              "(linked, not trained again)")
    if missing:
        print(f"not estimated (no cost measured): {', '.join(sorted(missing))}")


if __name__ == "__main__":
    main()
