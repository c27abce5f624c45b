#!/bin/bash
# The study's region-loss arms again with one index per class over the batch (`loss.batch=true`, nnU-Net's batch
# Dice) instead of one per 2D patch and class (configs/loss/{dice,generalized_dice,tversky,focal_tversky}.yaml:
# `batch: false`, no cross-entropy term), outside multirun/claims: no verdict reads these runs; `ctbench study
# report` reads them for its *Sensitivity to the Dice formulation* table (`ctbench.study.LOSS_VARIANTS`). Per patch,
# a class absent from a patch gives its false positives there almost no gradient
# (scripts/dice_empty_patch_gradient.py). Grid, choice and seeds: scripts/loss_variant_runs.sh.
# Usage: JOBS=1 run.sh [ARM...]   (default: dice generalized_dice tversky focal_tversky tversky_fp, one arm after
#   another; tversky_fp: C17's Tversky with alpha 0.7, configs/experiment/claims/c17_tversky.yaml)
cd "$(dirname "$0")/../.."  # the repository root
[ $# -gt 0 ] || set -- dice generalized_dice tversky focal_tversky tversky_fp
exec scripts/loss_variant_runs.sh multirun/claims_dice_batch batch loss.batch=true "$@"
