#!/bin/bash
# The shorter arm of each claim whose arms trained different epochs, trained as long as the longer arm (outside
# multirun/claims: no verdict reads these runs; `ctbench study report` reads them for its *Sensitivity to the
# epochs* table, `ctbench.study.equal_epoch_runs`). Each arm of the study trains to its own convergence tier
# (configs/study/cpu.yaml: study.epochs_by_arm, study.epochs_by_model), so a claim can set a candidate at 500
# epochs against a baseline at 100. Here the shorter arm trains at the longer one's epochs, at the rate its own
# grid chose (multirun/claims_tuning; the architecture arms at the preset's rate), seeds 0-2, two jobs side by
# side with one thread each (as `ctbench study run --jobs 2`). A finished run (report/summary.json written) is
# skipped; an interrupted one resumes from its last checkpoint when run again.
# Usage: run.sh [NAME...]   (default: every job below, most claims served per job-minute first)
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
out=multirun/claims_epoch_check
lr() {  # the learning rate the study's grid chose for the arm whose seed-0 run is $1 (multirun/claims/lr_choice.json)
  .venv/bin/python -c "import json, sys; print(json.load(open('multirun/claims/lr_choice.json'))[sys.argv[1]]['chosen'])" "$1"
}
jobs() {
  local s ce_phase ce dice ce_touching
  ce_phase=$(lr unet-ce-2d-seed0-phase) ce=$(lr unet-ce-2d-seed0) dice=$(lr unet-dice-2d-seed0) \
    ce_touching=$(lr unet-ce-2d-seed0-touching) || exit 1
  for s in 0 1 2; do  # C23a: CE on the non-contrast phase at 500, as the conservative loss
    echo "unet-ce-2d-seed$s-phase-e500 experiment=claims/c23_conservative_phase loss=ce seed=$s optim.optimizer.lr=$ce_phase +study.epochs_by_arm.ce_phase=500"
  done
  for s in 0 1 2; do  # C14a: DeepLab v2 at 100, as v1
    echo "deeplabv2-dice_ce-2d-seed$s-e100 experiment=claims/c14_deeplab model=deeplabv2 seed=$s trainer.max_epochs=100"
  done
  for s in 0 1 2; do  # C11a: the 2D PSPNet at 250, as the 3D PSPNet
    echo "pspnet-dice_ce-2d-seed$s-e250 experiment=claims/c11_pspnet model=pspnet dims=2 seed=$s trainer.max_epochs=250"
  done
  for s in 0 1 2; do  # C7h-j, C19a/b, C21b: Dice loss at 150, as focal Tversky, exp-log, generalized Dice
    echo "unet-dice-2d-seed$s-e150 experiment=claims/unet_ce_dice loss=dice seed=$s optim.optimizer.lr=$dice +study.epochs_by_arm.dice=150"
  done
  for s in 0 1 2; do  # C16a-d: CE at 150, as weighted CE beta 2 and beta 0.5
    echo "unet-ce-2d-seed$s-e150 experiment=claims/unet_ce_dice loss=ce seed=$s optim.optimizer.lr=$ce +study.epochs_by_arm.ce=150"
  done
  for s in 0 1 2; do  # C2a, C4a-c, C21a: the U-Net with Dice+CE at 150, as FCN-8s, the cascade and weighted CE beta 2
    echo "unet-dice_ce-2d-seed$s-e150 experiment=claims/c24_small_objects model=unet seed=$s trainer.max_epochs=150"
  done
  for s in 0 1 2; do  # C22a/b: CE on the touching phantom at 500, as the distance-weighted loss
    echo "unet-ce-2d-seed$s-touching-e500 experiment=claims/c22_touching_ce seed=$s optim.optimizer.lr=$ce_touching +study.epochs_by_arm.ce_touching=500"
  done
  for s in 0 1 2; do  # C17b/d: Dice loss at 500, as Tversky alpha 0.7
    echo "unet-dice-2d-seed$s-e500 experiment=claims/unet_ce_dice loss=dice seed=$s optim.optimizer.lr=$dice +study.epochs_by_arm.dice=500"
  done
  for s in 0 1 2; do  # C12: DRINet at 150, as FCN-8s (about 60 min a job)
    echo "drinet-dice_ce-2d-seed$s-e150 experiment=claims/c12_drinet model=drinet seed=$s trainer.max_epochs=150"
  done
  for s in 0 1 2; do  # C2b (exploratory): FCN-8s at 250, as SegNet (about 37 min a job)
    echo "fcn8s-dice_ce-2d-seed$s-e250 experiment=claims/c1_fcn_skips model=fcn8s seed=$s trainer.max_epochs=250"
  done
}
one() {  # NAME OVERRIDES...
  local name=$1; shift
  if [ -f "$out/$name/report/summary.json" ]; then echo "[skip] $name"; return; fi
  echo "[start] $name $(date -u +%H:%M)"
  .venv/bin/ctbench train "$@" hydra.run.dir="$out/$name" >> "$out/$name.log" 2>&1
  echo "[done rc=$?] $name $(date -u +%H:%M)"
}
export -f one; export out
if [ $# -gt 0 ]; then jobs | grep -F -f <(printf '%s\n' "$@"); else jobs; fi | xargs -P 2 -L 1 bash -c 'one "$@"' _
