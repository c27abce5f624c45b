#!/bin/bash
# one rate beyond the grid's edge for the five arms with the largest edge lead (or one not judged)
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
D=multirun/claims_grid_check
run() { name=$1; shift; echo "[grid-check] $(date -u +%H:%M:%S) start $name"; /usr/bin/time -f "%e s wall %U s user" .venv/bin/ctbench train "$@" hydra.run.dir=$D/$name resume=true > $D/logs/$name.log 2>&1; echo "[grid-check] $(date -u +%H:%M:%S) end $name rc=$?"; }
( run unet-tversky-2d-seed0-fp0.7-lr0.027 experiment=claims/c17_tversky seed=0 optim.optimizer.lr=0.027 ) &
( run unet-wce-2d-seed0-beta2.0-lr0.027 experiment=claims/c16_wce_beta study.arm=wce_beta2 seed=0 optim.optimizer.lr=0.027
  run unet-wce-2d-seed0-beta0.5-lr0.027 experiment=claims/c16_wce_beta study.arm=wce_beta0_5 seed=0 optim.optimizer.lr=0.027
  run unet-ce-2d-seed0-phase-lr0.027 experiment=claims/c23_conservative_phase loss=ce seed=0 optim.optimizer.lr=0.027
  run unet-generalized_dice-2d-seed0-lr0.00033 experiment=claims/c7_small_losses loss=generalized_dice seed=0 optim.optimizer.lr=0.00033 ) &
wait
echo "[grid-check] $(date -u +%H:%M:%S) all done"
