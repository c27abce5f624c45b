#!/bin/bash
# The study's Dice-loss arm again with one soft Dice per class over the batch (`loss.batch=true`, nnU-Net's batch
# Dice) instead of one per 2D patch and class (configs/loss/dice.yaml: `batch: false`), outside multirun/claims: no
# verdict reads these runs; `ctbench study report` reads them for its *Sensitivity to the Dice formulation* table
# (`ctbench.study.dice_batch_sensitivity`), every claim with a Dice-loss side judged again with them in the Dice
# arm's place. Per patch, a class absent from a patch gives its false positives there almost no gradient
# (scripts/dice_empty_patch_gradient.py). As every loss arm of the study: seed 0 at each rate of the grid
# (0.001, 0.003, 0.009: `study.LR_FACTORS` x the configured 3e-3), the best validation Dice chosen and recorded in
# lr_choice.json (key dice_batch), then seeds 1 and 2 at that rate; the Dice arm's epochs (study.epochs_by_arm).
# JOBS (default 2) jobs side by side with one thread each; a finished run (report/summary.json) is skipped, an
# interrupted one resumes from its last checkpoint when run again.
# Usage: JOBS=1 run.sh
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 out=multirun/claims_dice_batch
one() {  # NAME OVERRIDES...
  local name=$1; shift
  if [ -f "$out/$name/report/summary.json" ]; then echo "[skip] $name"; return; fi
  echo "[start] $name $(date -u +%H:%M)"
  .venv/bin/ctbench train experiment=claims/unet_ce_dice loss=dice loss.batch=true "$@" \
    hydra.run.dir="$out/$name" >> "$out/$name.log" 2>&1
  echo "[done rc=$?] $name $(date -u +%H:%M)"
}
export -f one
for rate in 0.001 0.003 0.009; do echo "unet-dice-batch-2d-seed0-lr$rate seed=0 optim.optimizer.lr=$rate"; done \
  | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _
chosen=$(.venv/bin/python - <<'PY'
from pathlib import Path

from ctbench.study import best_validation, choose, record_choice

out = Path("multirun/claims_dice_batch")
grid = {rate: out / f"unet-dice-batch-2d-seed0-lr{rate}" for rate in ("0.001", "0.003", "0.009")}

def make() -> dict:
    scores = {rate: best_validation(run) for rate, run in grid.items()}
    return {"metric": "val/mean_dice, best", "validation": scores, "chosen": choose(scores, "0.003"),
            "runs": {rate: str(run) for rate, run in grid.items()}}

print(record_choice(out / "lr_choice.json", "dice_batch", make)["chosen"])
PY
) || exit 1
echo "[chosen] $chosen"
for seed in 1 2; do echo "unet-dice-batch-2d-seed$seed-lr$chosen seed=$seed optim.optimizer.lr=$chosen"; done \
  | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _
