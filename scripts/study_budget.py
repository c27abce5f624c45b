#!/usr/bin/env python
"""The CPU study's job time, estimated per job from measured per-network costs: where the time goes.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/study_cost.py > /tmp/costs.txt     # s/step and s/volume
    .venv/bin/ctbench study run --dry-run > /tmp/plan.txt                          # the jobs
    .venv/bin/python scripts/study_budget.py /tmp/costs.txt /tmp/plan.txt

A training job of network N for E epochs costs ``E x 16 x step(N) + (E / 5) x 8 x volume(N)`` (validation:
cached volumes, Dice only) ``+ T x (volume(N) + IO)`` (testing) plus ``SETUP`` seconds (T test volumes: 40, or 48 on ``dataset=phantom_phase``);
an eval job its volumes (8 on ``split=val``, 40 on the test set) plus the dense CRF where it applies.
``step``/``volume`` come from ``scripts/study_cost.py`` scaled by :data:`STEP_SCALE`/:data:`VOLUME_SCALE`,
which map that script's figures onto a real run: the same model on a 2D U-Net run of 100 epochs
(``ctbench train experiment=claims/unet_dice_ce study.epochs=100``) predicts 12.5 min, as measured.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict

#: A real run's training step / the benchmark's (data pipeline, Lightning hooks, the U-Net: 0.20 s / 0.231 s).
STEP_SCALE = 0.20 / 0.231
#: A real validation/test pass / the benchmark's (sliding window of ctbench's predictor: 1.30 s / 2.08 s).
VOLUME_SCALE = 1.30 / 2.08
#: Per volume beside the network: loading, resampling to the file's grid, metrics (profile of `ctbench eval`).
IO_SECONDS = 0.74
#: Per job: imports, Hydra, caching the dataset.
SETUP_SECONDS = 30.0
#: Claim experiments that train for ``study.long_epochs`` (100) instead of ``study.epochs`` (60).
LONG_EXPERIMENTS = ("c3_crf",)
#: Dense CRF per test volume (not measured for the estimate: ``None`` leaves it out and says so).
CRF_SECONDS: float | None = None


def read_costs(path: str) -> dict[str, tuple[float, float]]:
    costs = {}
    for line in open(path):
        parts = line.split()
        if len(parts) == 4 and re.fullmatch(r"[\d.]+", parts[2]):
            costs[parts[0]] = (float(parts[2]), float(parts[3]))
    return costs


def main() -> None:
    costs, plan = read_costs(sys.argv[1]), open(sys.argv[2]).read().splitlines()
    rows: dict[str, list[float]] = defaultdict(list)
    missing = set()
    for line in plan:
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
                long = any(f"experiment=claims/{e} " in line for e in LONG_EXPERIMENTS)
                epochs = int(tagged.group(1)) if tagged else 100 if long else 60
                tests = 48 if "-phase" in folder else 40
                validation = epochs // 5 * 8 * volume * VOLUME_SCALE  # cached volumes, Dice only: no IO
                seconds = epochs * 16 * step * STEP_SCALE + validation + tests * per_volume + SETUP_SECONDS
                group = f"{key}{f' (C10, {epochs} epochs)' if tagged else ''}"
                group += " (LR grid)" if "claims_tuning" in line and "eval" not in line else ""
            else:
                n = 8 if "split=val" in line else 40
                seconds = n * (per_volume + (CRF_SECONDS or 0.0)) + SETUP_SECONDS
                group = f"eval {'validation (CRF grid)' if n == 8 else 'test'}"
            rows[group].append(seconds)
    total = sum(sum(v) for v in rows.values())
    print(f"{'jobs':<34}{'count':>6}{'min/job':>9}{'job min':>9}{'share':>7}")
    for group, values in sorted(rows.items(), key=lambda kv: -sum(kv[1])):
        print(f"{group:<34}{len(values):>6}{sum(values) / len(values) / 60:>9.1f}{sum(values) / 60:>9.0f}"
              f"{sum(values) / total:>7.0%}")
    jobs = sum(len(v) for v in rows.values())
    print(f"{'all':<34}{jobs:>6}{'':>9}{total / 60:>9.0f}   = {total / 3600:.1f} h of job time, "
          f"{total / 7200:.1f} h with --jobs 2")
    if missing:
        print(f"not estimated (no cost measured): {', '.join(sorted(missing))}")
    if CRF_SECONDS is None:
        print("eval jobs exclude the dense CRF's own time (not measured)")


if __name__ == "__main__":
    main()
