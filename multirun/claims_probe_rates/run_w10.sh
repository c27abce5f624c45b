#!/bin/bash
# The fourth costly arm of the 15-epoch probe, left out of run.sh for time: C22's distance-weighted U-Net loss,
# w0 = 10, on the touching phantom at the probe's rate 0.009 (the grid chose 0.003; the grid's validation scores
# 0.009 2.7 seed SDs lower). Declared before any run, 7 Dec (the commit that adds this file).
# Seeds 1 and 2 with the study's overrides and epochs (500, `study.epochs_by_arm.unet_weighted`), today's code;
# seed 0 at 0.009 is the grid's own run (multirun/claims_tuning/...-w10.0-lr0.009), copied here under the
# study's run name (report and config; no weights), as run.sh did for the other three arms.
# Reading: PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_probe_rates
# (every run of this folder in place of the study's run of its name, the declared family of 66; with run.sh's
# three arms, so C22a-c read all four arms at the probe's rates). No verdict of the study changes.
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
D=multirun/claims_probe_rates
name=unet-unet_weighted-2d-seed0-touching-w10.0
[ -d $D/$name ] || { mkdir -p $D/$name && cp -r multirun/claims_tuning/$name-lr0.009/{report,resolved_config.yaml,provenance.json,splits.json,.hydra} $D/$name/ && rm -f $D/$name/report/overlay_*.png; }
run() { name=$1; shift; echo "[probe-rates] $(date -u +%H:%M:%S) start $name"; /usr/bin/time -f "%e s wall %U s user" .venv/bin/ctbench train "$@" progress_bar=false hydra.run.dir=$D/$name resume=true > $D/logs/$name.log 2>&1; echo "[probe-rates] $(date -u +%H:%M:%S) end $name rc=$?"; }
run unet-unet_weighted-2d-seed1-touching-w10.0 experiment=claims/c22_touching loss.w0=10.0 seed=1 optim.optimizer.lr=0.009 &
run unet-unet_weighted-2d-seed2-touching-w10.0 experiment=claims/c22_touching loss.w0=10.0 seed=2 optim.optimizer.lr=0.009 &
wait
echo "[probe-rates] $(date -u +%H:%M:%S) all done"
