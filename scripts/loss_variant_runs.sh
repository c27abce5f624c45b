#!/bin/bash
# A loss arm of the study trained again with one setting changed, outside multirun/claims (no verdict reads these
# runs; `ctbench study report` judges every claim with that loss on a side again with them in its place:
# `ctbench.study.LOSS_VARIANTS`). As every loss arm of the study: seed 0 at each rate of the grid (0.001, 0.003,
# 0.009: `study.LR_FACTORS` x the configured 3e-3), the best validation Dice chosen and recorded in FOLDER/lr_choice.json
# (key LOSS_VARIANT), then seeds 1 and 2 at that rate; the arm's own epochs (study.epochs_by_arm). JOBS (default 2)
# jobs side by side with one thread each; a finished run (report/summary.json) is skipped, an interrupted one
# resumes from its last checkpoint when run again. EPOCHS=N trains at an epoch tier of N instead (an arm that failed
# the convergence gate at its own: first retire its runs with scripts/move_arm_up_a_tier.py --choice-key, as the study does).
# An ARM is a loss (the study's arm of experiment=claims/unet_ce_dice with that loss) or tversky_fp (C17's Tversky with
# alpha 0.7, beta 0.3: experiment=claims/c17_tversky, study.tag -fp0.7); its choice key is ARM_VARIANT, its runs
# unet-LOSS-VARIANT-2d-seedS[TAG]-lrRATE.
# Usage: JOBS=1 [EPOCHS=150] scripts/loss_variant_runs.sh FOLDER VARIANT OVERRIDE ARM...
#   e.g. scripts/loss_variant_runs.sh multirun/claims_dice_batch batch loss.batch=true dice tversky tversky_fp
cd "$(dirname "$0")/.."  # the repository root
[ $# -ge 4 ] || { echo "usage: $0 FOLDER VARIANT OVERRIDE ARM..." >&2; exit 2; }
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 out=$1 variant=$2 override=$3
shift 3
one() {  # ARM NAME OVERRIDES...
  local arm=$1 name=$2; shift 2
  if [ -f "$out/$name/report/summary.json" ]; then echo "[skip] $name"; return; fi
  echo "[start] $name $(date -u +%H:%M)"
  .venv/bin/ctbench train "$@" "$override" ${EPOCHS:+"++study.epochs_by_arm.$arm=$EPOCHS"} \
    hydra.run.dir="$out/$name" >> "$out/$name.log" 2>&1
  echo "[done rc=$?] $name $(date -u +%H:%M)"
}
export -f one
mkdir -p "$out"
for arm in "$@"; do
  case $arm in
    tversky_fp) loss=tversky tag=-fp0.7 train=experiment=claims/c17_tversky ;;
    *) loss=$arm tag= train="experiment=claims/unet_ce_dice loss=$arm" ;;
  esac
  for rate in 0.001 0.003 0.009; do echo "$arm unet-$loss-$variant-2d-seed0$tag-lr$rate $train seed=0 optim.optimizer.lr=$rate"; done \
    | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _
  chosen=$(ARM=$arm LOSS=$loss TAG=$tag .venv/bin/python - <<'PY'
import os
from pathlib import Path

from ctbench.study import best_validation, choose, record_choice

arm, loss, tag = os.environ["ARM"], os.environ["LOSS"], os.environ["TAG"]
variant, out = os.environ["variant"], Path(os.environ["out"])
grid = {rate: out / f"unet-{loss}-{variant}-2d-seed0{tag}-lr{rate}" for rate in ("0.001", "0.003", "0.009")}

def make() -> dict:
    scores = {rate: best_validation(run) for rate, run in grid.items()}
    return {"metric": "val/mean_dice, best", "validation": scores, "chosen": choose(scores, "0.003"),
            "runs": {rate: str(run) for rate, run in grid.items()}}

print(record_choice(out / "lr_choice.json", f"{arm}_{variant}", make)["chosen"])
PY
  ) || exit 1
  echo "[chosen] $arm $chosen"
  for seed in 1 2; do echo "$arm unet-$loss-$variant-2d-seed$seed$tag-lr$chosen $train seed=$seed optim.optimizer.lr=$chosen"; done \
    | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _
done
