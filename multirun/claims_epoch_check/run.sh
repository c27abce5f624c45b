#!/bin/bash
# C23's baseline (CE on the non-contrast cases, chosen rate 0.009) trained as long as the conservative
# arm (500 epochs instead of its converged 100): does the unseen-phase gap of C23a come from the epochs?
# Outside multirun/claims: no claim reads it. Run 5 Dec 09:19 as below, beside the slow test tier.
cd "$(dirname "$0")/../.."  # the repository root
.venv/bin/ctbench train experiment=claims/c23_conservative_phase loss=ce seed=0 optim.optimizer.lr=0.009 \
  +study.epochs_by_arm.ce_phase=500 hydra.run.dir=multirun/claims_epoch_check/unet-ce-2d-seed0-phase-e500 \
  > multirun/claims_epoch_check/unet-ce-2d-seed0-phase-e500.log 2>&1
