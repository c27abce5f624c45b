#!/bin/bash
# Would a short learning-rate probe choose the same rate as the study's grid? (declared before any run, 7 Dec)
#
# The study picks each U-Net loss arm's learning rate from 0.001/0.003/0.009 by seed 0's best validation
# val/mean_dice, each grid run trained as long as the arm (100-500 epochs): about a quarter of the CPU study's job
# time. This trains the same 57 seed-0 runs (19 arms x 3 rates, each grid run's own overrides, today's code) for
# 15 epochs only, the cosine schedule annealed over those 15 (trainer.max_epochs=15; validated at 5, 10, 15), and
# judges them by the rule that chose: study.choose on best_validation, ties to the configured 0.003.
# Reading (scripts/lr_probe_check.py): the number of arms whose probe choice equals the recorded choice
# (multirun/claims/lr_choice.json); where it differs, the full grid's validation cost of the probe's rate
# against the arm's seed SD at the chosen rate, and seed 0's test mean Dice at each. No verdict is re-judged:
# the study keeps its declared grid; this measures one lever of the 6 h budget.
# One thread a job, two at a time.
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
D=multirun/claims_lr_probe
run() { name=$1; shift; echo "[lr-probe] $(date -u +%H:%M:%S) start $name"; /usr/bin/time -f "%e s wall %U s user" .venv/bin/ctbench train "$@" trainer.max_epochs=15 progress_bar=false hydra.run.dir=$D/$name resume=true > $D/logs/$name.log 2>&1; echo "[lr-probe] $(date -u +%H:%M:%S) end $name rc=$?"; }
( run unet-ce-2d-seed0-lr0.001 experiment=claims/unet_ce_dice loss=ce seed=0 optim.optimizer.lr=0.001
  run unet-ce-2d-seed0-lr0.009 experiment=claims/unet_ce_dice loss=ce seed=0 optim.optimizer.lr=0.009
  run unet-ce-2d-seed0-phase-lr0.003 experiment=claims/c23_conservative_phase loss=ce seed=0 optim.optimizer.lr=0.003
  run unet-ce-2d-seed0-touching-lr0.001 experiment=claims/c22_touching_ce seed=0 optim.optimizer.lr=0.001
  run unet-ce-2d-seed0-touching-lr0.009 experiment=claims/c22_touching_ce seed=0 optim.optimizer.lr=0.009
  run unet-combo-2d-seed0-lr0.003 experiment=claims/c7_small_losses loss=combo seed=0 optim.optimizer.lr=0.003
  run unet-conservative-2d-seed0-phase-lr0.001 experiment=claims/c23_conservative_phase loss=conservative seed=0 optim.optimizer.lr=0.001
  run unet-conservative-2d-seed0-phase-lr0.009 experiment=claims/c23_conservative_phase loss=conservative seed=0 optim.optimizer.lr=0.009
  run unet-dice-2d-seed0-lr0.003 experiment=claims/unet_ce_dice loss=dice seed=0 optim.optimizer.lr=0.003
  run unet-dice_focal-2d-seed0-lr0.001 experiment=claims/c21_compound_losses loss=dice_focal seed=0 optim.optimizer.lr=0.001
  run unet-dice_focal-2d-seed0-lr0.009 experiment=claims/c21_compound_losses loss=dice_focal seed=0 optim.optimizer.lr=0.009
  run unet-dice_topk-2d-seed0-lr0.003 experiment=claims/c21_compound_losses loss=dice_topk seed=0 optim.optimizer.lr=0.003
  run unet-exp_log-2d-seed0-lr0.001 experiment=claims/c7_small_losses loss=exp_log seed=0 optim.optimizer.lr=0.001
  run unet-exp_log-2d-seed0-lr0.009 experiment=claims/c7_small_losses loss=exp_log seed=0 optim.optimizer.lr=0.009
  run unet-focal-2d-seed0-lr0.003 experiment=claims/c7_small_losses loss=focal seed=0 optim.optimizer.lr=0.003
  run unet-focal_tversky-2d-seed0-lr0.001 experiment=claims/c7_small_losses loss=focal_tversky seed=0 optim.optimizer.lr=0.001
  run unet-focal_tversky-2d-seed0-lr0.009 experiment=claims/c7_small_losses loss=focal_tversky seed=0 optim.optimizer.lr=0.009
  run unet-generalized_dice-2d-seed0-lr0.003 experiment=claims/c7_small_losses loss=generalized_dice seed=0 optim.optimizer.lr=0.003
  run unet-topk-2d-seed0-lr0.001 experiment=claims/c21_compound_losses loss=topk seed=0 optim.optimizer.lr=0.001
  run unet-topk-2d-seed0-lr0.009 experiment=claims/c21_compound_losses loss=topk seed=0 optim.optimizer.lr=0.009
  run unet-tversky-2d-seed0-fp0.7-lr0.003 experiment=claims/c17_tversky seed=0 optim.optimizer.lr=0.003
  run unet-tversky-2d-seed0-lr0.001 experiment=claims/c7_small_losses loss=tversky seed=0 optim.optimizer.lr=0.001
  run unet-tversky-2d-seed0-lr0.009 experiment=claims/c7_small_losses loss=tversky seed=0 optim.optimizer.lr=0.009
  run unet-unet_weighted-2d-seed0-touching-w0.0-lr0.003 experiment=claims/c22_touching loss.w0=0.0 seed=0 optim.optimizer.lr=0.003
  run unet-unet_weighted-2d-seed0-touching-w10.0-lr0.001 experiment=claims/c22_touching loss.w0=10.0 seed=0 optim.optimizer.lr=0.001
  run unet-unet_weighted-2d-seed0-touching-w10.0-lr0.009 experiment=claims/c22_touching loss.w0=10.0 seed=0 optim.optimizer.lr=0.009
  run unet-wce-2d-seed0-beta0.5-lr0.003 experiment=claims/c16_wce_beta study.arm=wce_beta0_5 seed=0 optim.optimizer.lr=0.003
  run unet-wce-2d-seed0-beta2.0-lr0.001 experiment=claims/c16_wce_beta study.arm=wce_beta2 seed=0 optim.optimizer.lr=0.001
  run unet-wce-2d-seed0-beta2.0-lr0.009 experiment=claims/c16_wce_beta study.arm=wce_beta2 seed=0 optim.optimizer.lr=0.009 ) &
( run unet-ce-2d-seed0-lr0.003 experiment=claims/unet_ce_dice loss=ce seed=0 optim.optimizer.lr=0.003
  run unet-ce-2d-seed0-phase-lr0.001 experiment=claims/c23_conservative_phase loss=ce seed=0 optim.optimizer.lr=0.001
  run unet-ce-2d-seed0-phase-lr0.009 experiment=claims/c23_conservative_phase loss=ce seed=0 optim.optimizer.lr=0.009
  run unet-ce-2d-seed0-touching-lr0.003 experiment=claims/c22_touching_ce seed=0 optim.optimizer.lr=0.003
  run unet-combo-2d-seed0-lr0.001 experiment=claims/c7_small_losses loss=combo seed=0 optim.optimizer.lr=0.001
  run unet-combo-2d-seed0-lr0.009 experiment=claims/c7_small_losses loss=combo seed=0 optim.optimizer.lr=0.009
  run unet-conservative-2d-seed0-phase-lr0.003 experiment=claims/c23_conservative_phase loss=conservative seed=0 optim.optimizer.lr=0.003
  run unet-dice-2d-seed0-lr0.001 experiment=claims/unet_ce_dice loss=dice seed=0 optim.optimizer.lr=0.001
  run unet-dice-2d-seed0-lr0.009 experiment=claims/unet_ce_dice loss=dice seed=0 optim.optimizer.lr=0.009
  run unet-dice_focal-2d-seed0-lr0.003 experiment=claims/c21_compound_losses loss=dice_focal seed=0 optim.optimizer.lr=0.003
  run unet-dice_topk-2d-seed0-lr0.001 experiment=claims/c21_compound_losses loss=dice_topk seed=0 optim.optimizer.lr=0.001
  run unet-dice_topk-2d-seed0-lr0.009 experiment=claims/c21_compound_losses loss=dice_topk seed=0 optim.optimizer.lr=0.009
  run unet-exp_log-2d-seed0-lr0.003 experiment=claims/c7_small_losses loss=exp_log seed=0 optim.optimizer.lr=0.003
  run unet-focal-2d-seed0-lr0.001 experiment=claims/c7_small_losses loss=focal seed=0 optim.optimizer.lr=0.001
  run unet-focal-2d-seed0-lr0.009 experiment=claims/c7_small_losses loss=focal seed=0 optim.optimizer.lr=0.009
  run unet-focal_tversky-2d-seed0-lr0.003 experiment=claims/c7_small_losses loss=focal_tversky seed=0 optim.optimizer.lr=0.003
  run unet-generalized_dice-2d-seed0-lr0.001 experiment=claims/c7_small_losses loss=generalized_dice seed=0 optim.optimizer.lr=0.001
  run unet-generalized_dice-2d-seed0-lr0.009 experiment=claims/c7_small_losses loss=generalized_dice seed=0 optim.optimizer.lr=0.009
  run unet-topk-2d-seed0-lr0.003 experiment=claims/c21_compound_losses loss=topk seed=0 optim.optimizer.lr=0.003
  run unet-tversky-2d-seed0-fp0.7-lr0.001 experiment=claims/c17_tversky seed=0 optim.optimizer.lr=0.001
  run unet-tversky-2d-seed0-fp0.7-lr0.009 experiment=claims/c17_tversky seed=0 optim.optimizer.lr=0.009
  run unet-tversky-2d-seed0-lr0.003 experiment=claims/c7_small_losses loss=tversky seed=0 optim.optimizer.lr=0.003
  run unet-unet_weighted-2d-seed0-touching-w0.0-lr0.001 experiment=claims/c22_touching loss.w0=0.0 seed=0 optim.optimizer.lr=0.001
  run unet-unet_weighted-2d-seed0-touching-w0.0-lr0.009 experiment=claims/c22_touching loss.w0=0.0 seed=0 optim.optimizer.lr=0.009
  run unet-unet_weighted-2d-seed0-touching-w10.0-lr0.003 experiment=claims/c22_touching loss.w0=10.0 seed=0 optim.optimizer.lr=0.003
  run unet-wce-2d-seed0-beta0.5-lr0.001 experiment=claims/c16_wce_beta study.arm=wce_beta0_5 seed=0 optim.optimizer.lr=0.001
  run unet-wce-2d-seed0-beta0.5-lr0.009 experiment=claims/c16_wce_beta study.arm=wce_beta0_5 seed=0 optim.optimizer.lr=0.009
  run unet-wce-2d-seed0-beta2.0-lr0.003 experiment=claims/c16_wce_beta study.arm=wce_beta2 seed=0 optim.optimizer.lr=0.003 ) &
wait
echo "[lr-probe] $(date -u +%H:%M:%S) all done"
