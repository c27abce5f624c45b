#!/bin/bash
# The study's runs whose claims compare them with runs of other code, trained again with today's code
# (outside multirun/claims: no verdict reads these runs; scripts/retrained_sensitivity.py judges the claims with
# them in place of the study's runs of the same name). `scripts/commit_replay_audit.py multirun/claims` finds
# that the runs trained before commit ba3ec25 (3 Dec 09:29) train differently from every later commit: their
# training stream restarted at the first validation. In C2b, C5a/b, C12, C13 and C21a/c/d one side was
# trained before it and the other after; these are that side's runs, with the study's own commands
# (`ctbench study run --dry-run --only C2 C5 C12 C13 C21`), two jobs side by side with one thread each (as
# `ctbench study run --jobs 2`). Then C1's FCN-32s and FCN-16s, so that C1's sides are both today's code.
# A finished run (report/summary.json written) is skipped; an interrupted one resumes from its last checkpoint
# when run again.
# Usage: run.sh [NAME...]   (default: every job below, the longest first)
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
out=multirun/claims_same_code
jobs() {
  echo "segnet-dice_ce-2d-seed0 experiment=claims/c2_unet_segnet model=segnet seed=0"  # C2b (250 epochs, ~95 min)
  for s in 0 1 2; do  # C2b, C5a/b, C13, C21a/c/d: the U-Net with Dice+CE (100 epochs)
    echo "unet-dice_ce-2d-seed$s experiment=claims/unet_dice_ce seed=$s"
  done
  for s in 0 1 2; do  # C12: FCN-8s (150 epochs)
    echo "fcn8s-dice_ce-2d-seed$s experiment=claims/c12_drinet model=fcn8s seed=$s"
  done
  # C1a-c, whose two sides were both trained before ba3ec25: with FCN-8s alone trained again, C1b's reproduced
  # read inconclusive; with FCN-32s and FCN-16s trained again too, both sides are today's code (150 epochs each)
  for s in 0 1 2; do
    echo "fcn32s-dice_ce-2d-seed$s experiment=claims/c1_fcn_skips model=fcn32s seed=$s"
  done
  for s in 0 1 2; do
    echo "fcn16s-dice_ce-2d-seed$s experiment=claims/c1_fcn_skips model=fcn16s seed=$s"
  done
}
one() {  # NAME OVERRIDES...
  local name=$1; shift
  if [ -f "$out/$name/report/summary.json" ]; then echo "[skip] $name"; return; fi
  echo "[start] $name $(date -u +%H:%M)"
  .venv/bin/ctbench train "$@" hydra.run.dir="$out/$name" resume=true >> "$out/$name.log" 2>&1
  echo "[done rc=$?] $name $(date -u +%H:%M)"
}
export -f one; export out
if [ $# -gt 0 ]; then jobs | grep -F -f <(printf '%s\n' "$@"); else jobs; fi | xargs -P 2 -L 1 bash -c 'one "$@"' _
