#!/bin/bash
# the script's own test_one, run for the finished replays while one core waits on 3D seed 2 (the script skips them later)
# /tmp/test_one.sh was made with: sed -n '/^test_one() {/,/^}/p' multirun/claims_test_time/run_replay_declared_pspnet.sh > /tmp/test_one.sh
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 out=$PWD/multirun/claims_test_time study=$PWD/multirun/claims
source /tmp/test_one.sh
while [ ! -f "$out/replayed_declared/pspnet-dice_ce-2d-seed2/report/summary.json" ]; do sleep 20; done
for n in pspnet-dice_ce-3d-seed0 pspnet-dice_ce-3d-seed1 pspnet-dice_ce-2d-seed0 pspnet-dice_ce-2d-seed1 pspnet-dice_ce-2d-seed2; do
  test_one $n best best_declared; test_one $n last final_declared
done
