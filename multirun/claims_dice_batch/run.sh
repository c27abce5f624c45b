#!/bin/bash
# The study's region-loss arms again with one index per class over the batch (`loss.batch=true`, nnU-Net's batch
# Dice) instead of one per 2D patch and class (configs/loss/{dice,generalized_dice,tversky,focal_tversky}.yaml:
# per patch), outside multirun/claims: no verdict reads these runs; `ctbench study report` reads them for its
# *Sensitivity to the Dice formulation* table (`ctbench.study.batch_sensitivity`), every claim with a region-loss
# side judged again with them in that side's place. Per patch, a class absent from a patch gives its false positives
# there almost no gradient (scripts/dice_empty_patch_gradient.py). As every loss arm of the study: seed 0 at each
# rate of the grid (0.001, 0.003, 0.009: `study.LR_FACTORS` x the configured 3e-3), the best validation Dice chosen
# and recorded in lr_choice.json (key LOSS_batch), then seeds 1 and 2 at that rate; the arm's own epochs
# (study.epochs_by_arm). JOBS (default 2) jobs side by side with one thread each; a finished run
# (report/summary.json) is skipped, an interrupted one resumes from its last checkpoint when run again.
# Usage: JOBS=1 run.sh [LOSS...]   (default: dice generalized_dice tversky focal_tversky, one arm after another)
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 out=multirun/claims_dice_batch
one() {  # LOSS NAME OVERRIDES...
  local loss=$1 name=$2; shift 2
  if [ -f "$out/$name/report/summary.json" ]; then echo "[skip] $name"; return; fi
  echo "[start] $name $(date -u +%H:%M)"
  .venv/bin/ctbench train experiment=claims/unet_ce_dice loss="$loss" loss.batch=true "$@" \
    hydra.run.dir="$out/$name" >> "$out/$name.log" 2>&1
  echo "[done rc=$?] $name $(date -u +%H:%M)"
}
export -f one
losses=("$@"); [ $# -gt 0 ] || losses=(dice generalized_dice tversky focal_tversky)
for loss in "${losses[@]}"; do
  for rate in 0.001 0.003 0.009; do echo "$loss unet-$loss-batch-2d-seed0-lr$rate seed=0 optim.optimizer.lr=$rate"; done \
    | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _
  chosen=$(LOSS=$loss .venv/bin/python - <<'PY'
import os
from pathlib import Path

from ctbench.study import best_validation, choose, record_choice

loss, out = os.environ["LOSS"], Path("multirun/claims_dice_batch")
grid = {rate: out / f"unet-{loss}-batch-2d-seed0-lr{rate}" for rate in ("0.001", "0.003", "0.009")}

def make() -> dict:
    scores = {rate: best_validation(run) for rate, run in grid.items()}
    return {"metric": "val/mean_dice, best", "validation": scores, "chosen": choose(scores, "0.003"),
            "runs": {rate: str(run) for rate, run in grid.items()}}

print(record_choice(out / "lr_choice.json", f"{loss}_batch", make)["chosen"])
PY
  ) || exit 1
  echo "[chosen] $loss $chosen"
  for seed in 1 2; do echo "$loss unet-$loss-batch-2d-seed$seed-lr$chosen seed=$seed optim.optimizer.lr=$chosen"; done \
    | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _
done
