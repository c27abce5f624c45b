#!/bin/bash
# Would a verdict move if three loss arms were trained at the rate the 15-epoch probe chose? (declared before any
# run, 7 Dec 13:00; this header line corrected after the run: it said 13:07)
#
# multirun/claims_lr_probe (scripts/lr_probe_check.py) picked, for 4 arms, a rate that the grid's validation scores
# 2.7-3.6 seed SDs lower. Three of them are trained here at the probe's rate, seeds 1 and 2, with the study's
# overrides and epochs (today's code): C22's CE on the touching phantom at 0.001 (grid: 0.003), Dice+focal at
# 0.009 (0.003), weighted CE beta 2 at 0.001 (0.009). Seed 0 at that rate is the grid's own run
# (multirun/claims_tuning/ARM-lrR), copied here under the study's run name (report and config; no weights).
# The fourth, C22's distance-weighted w0 = 10, trains 500 epochs (about 35 min a seed), more than this session
# has left: not run.
# Reading: PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_probe_rates
# (each run takes the place of the study's run of its name; the declared family of 66). No verdict of the study
# changes: this says which would under a probe's rates.
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
D=multirun/claims_probe_rates
for pair in unet-ce-2d-seed0-touching:0.001 unet-dice_focal-2d-seed0:0.009 unet-wce-2d-seed0-beta2.0:0.001; do
  name=${pair%%:*}; rate=${pair##*:}
  [ -d $D/$name ] || { mkdir -p $D/$name && cp -r multirun/claims_tuning/$name-lr$rate/{report,resolved_config.yaml,provenance.json,splits.json,.hydra} $D/$name/ && rm -f $D/$name/report/overlay_*.png; }
done
run() { name=$1; shift; echo "[probe-rates] $(date -u +%H:%M:%S) start $name"; /usr/bin/time -f "%e s wall %U s user" .venv/bin/ctbench train "$@" progress_bar=false hydra.run.dir=$D/$name resume=true > $D/logs/$name.log 2>&1; echo "[probe-rates] $(date -u +%H:%M:%S) end $name rc=$?"; }
( run unet-ce-2d-seed1-touching experiment=claims/c22_touching_ce seed=1 optim.optimizer.lr=0.001
  run unet-dice_focal-2d-seed1 experiment=claims/c21_compound_losses loss=dice_focal seed=1 optim.optimizer.lr=0.009
  run unet-wce-2d-seed1-beta2.0 experiment=claims/c16_wce_beta study.arm=wce_beta2 seed=1 optim.optimizer.lr=0.001 ) &
( run unet-ce-2d-seed2-touching experiment=claims/c22_touching_ce seed=2 optim.optimizer.lr=0.001
  run unet-dice_focal-2d-seed2 experiment=claims/c21_compound_losses loss=dice_focal seed=2 optim.optimizer.lr=0.009
  run unet-wce-2d-seed2-beta2.0 experiment=claims/c16_wce_beta study.arm=wce_beta2 seed=2 optim.optimizer.lr=0.001 ) &
wait
echo "[probe-rates] $(date -u +%H:%M:%S) all done"
