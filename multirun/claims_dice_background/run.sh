#!/bin/bash
# The study's Dice, Tversky and focal Tversky arms again with the background as one more class of the loss
# (`loss.include_background=true`, MONAI's default; configs/loss/{dice,tversky,focal_tversky}.yaml leave it out and
# have no cross-entropy term), outside multirun/claims: no verdict reads these runs; `ctbench study report` reads
# them for its *Sensitivity to the background class* table (`ctbench.study.LOSS_VARIANTS`). With the background
# out, those arms predict the lesion over about 1000 times its volume on the test cases (per_case.csv: pred_voxels
# against truth_voxels). Grid, choice and seeds: scripts/loss_variant_runs.sh.
# Usage: JOBS=1 run.sh [ARM...]   (default: dice tversky focal_tversky tversky_fp, one arm after another;
#   tversky_fp: C17's Tversky with alpha 0.7, configs/experiment/claims/c17_tversky.yaml)
cd "$(dirname "$0")/../.."  # the repository root
[ $# -gt 0 ] || set -- dice tversky focal_tversky tversky_fp
exec scripts/loss_variant_runs.sh multirun/claims_dice_background background loss.include_background=true "$@"
