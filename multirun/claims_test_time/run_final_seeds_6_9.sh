#!/bin/bash
# C1's fresh seeds 6-9 (multirun/claims_fresh_seeds_c1) tested again from their final checkpoint, into
# final_seeds_6_9/ (outside multirun/claims: no declared verdict reads these tests).
# Why: on the 250-epoch retraining of seeds 0-2, C1b and C1c read inconclusive from best.ckpt and reproduced from
# last.ckpt (run.sh in this folder, final/); on seeds 3-5 both choices reproduce. Seeds 6-9 make seven fresh seeds
# a side; this asks whether the test-time choice moves C1 at that power too. Each test is
# `ctbench eval ckpt_path=RUN/checkpoints/last.ckpt postprocess=null` with the training run's overrides, one job
# at a time with one thread. A training run not yet complete (no report/summary.json) is not tested: its last.ckpt
# is not the end of its schedule.
# Declared before any of these tests and before any claim was computed on seeds 6-9 (7 Dec, this file's commit;
# 8 of the 12 runs complete then). Read only when all 12 are tested, with
#   PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_test_time/final \
#       multirun/claims_test_time/final_seeds_6_9 --family C1a C1b C1c C7b C7d C7f C8 C11a C14b C14c C18a C18b C24b
# C1a, C1b and C1c on seeds 3-9 alone from last.ckpt (seeds 3-5 from final/), Holm over the 13 of the fresh-seed
# replication, set against the declared reading of multirun/claims_fresh_seeds_c1/run.sh (the same seeds from
# best.ckpt). A verdict that differs between the two reads *sensitive to the test-time choice* beside the
# best.ckpt one, which is the replication's; neither choice becomes the protocol from this check. The in-place
# column (seeds 0-2 of final/) was read before and is not read again; other rows are not read.
# A finished test (report/summary.json written) is skipped. Usage: [JOBS=N] run_final_seeds_6_9.sh [NAME...]
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
out=multirun/claims_test_time/final_seeds_6_9
jobs() {
  for s in 6 7 8 9; do
    for m in fcn8s fcn16s fcn32s; do
      echo "$m-dice_ce-2d-seed$s multirun/claims_fresh_seeds_c1/$m-dice_ce-2d-seed$s experiment=claims/c1_fcn_skips model=$m seed=$s"
    done
  done
}
one() {  # NAME TRAINING_RUN OVERRIDES...
  local name=$1 run=$2; shift 2
  if [ -f "$out/$name/report/summary.json" ]; then echo "[skip] $name"; return; fi
  if [ ! -f "$run/report/summary.json" ]; then echo "[wait] $name: $run not complete"; return; fi
  mkdir -p "$out"
  echo "[start] $name $(date -u +%H:%M)"
  .venv/bin/ctbench eval ckpt_path="$run/checkpoints/last.ckpt" postprocess=null "$@" hydra.run.dir="$out/$name" \
    >> "$out/$name.log" 2>&1
  echo "[done rc=$?] $name $(date -u +%H:%M)"
}
export -f one; export out
if [ $# -gt 0 ]; then jobs | grep -F -f <(printf '%s\n' "$@"); else jobs; fi | xargs -P "${JOBS:-1}" -L 1 bash -c 'one "$@"' _
