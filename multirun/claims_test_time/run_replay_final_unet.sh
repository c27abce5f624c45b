#!/bin/bash
# C7b/d/f, C8 and C18a/b on fresh seeds 3-5 (multirun/claims_fresh_seeds: the U-Net with Dice, Combo and CE) tested
# from the final checkpoint, the runs replayed first (outside multirun/claims: no declared verdict reads these).
# Why: run_replay_final.sh tested C11a, C14b and C14c of the fresh-seed replication from last.ckpt (C14b's
# *contradicted* reads inconclusive there); C18a is the replication's other decisive verdict. These 9 runs were
# trained with today's training code (commits 926ac131, 8b9c7380, 8fef7b7d, 12a79695, 13f00602, all after
# ba3ec25) on this kind of CPU (AMD EPYC) and never resumed, but their weights were not kept. So, as
# run_replay_final.sh does:
#   1. replayed/NAME: the 9 runs trained again with the commands of multirun/claims_fresh_seeds/run.sh (two jobs,
#      one thread each), keeping their checkpoints;
#   2. a run *replays* when its validation curve, its tested epoch and every value of its test per_case.csv (all
#      columns but predict_seconds) equal the committed run's, exactly: REPLAYED or DIFFERS per run;
#   3. final_replay_unet/NAME: each tested from last.ckpt with the training overrides.
# Declared before any of these runs and tests (7 Dec, this file's commit). Read only when all 9 tests are
# complete and every replay reads REPLAYED, with
#   PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_test_time/final_replay \
#       multirun/claims_test_time/final_replay_unet --as-trained \
#       --family C1a C1b C1c C7b C7d C7f C8 C11a C14b C14c C18a C18b C24b
# C7b, C7d, C7f, C8, C18a and C18b on seeds 3-5 alone from last.ckpt, Holm over the 13 of the fresh-seed
# replication, set against the same from best.ckpt (`retrained_sensitivity.py multirun/claims_fresh_seeds
# --family ...`). A verdict that differs reads *sensitive to the test-time choice* beside the best.ckpt one, which
# stays. C11a, C14b and C14c's rows are those of run_replay_final.sh, not read again; a run that DIFFERS is a new
# draw, and its claims are not read from this folder.
# A finished step (report/summary.json written) is skipped. Usage: run_replay_final_unet.sh
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
out=multirun/claims_test_time
fresh=multirun/claims_fresh_seeds
trainings() {
  for s in 3 4 5; do
    echo "unet-dice-2d-seed$s experiment=claims/c8_combo_stability loss=dice seed=$s optim.optimizer.lr=0.001 ++study.epochs_by_arm.dice=150"
    echo "unet-combo-2d-seed$s experiment=claims/c8_combo_stability loss=combo seed=$s optim.optimizer.lr=0.003"
    echo "unet-ce-2d-seed$s experiment=claims/unet_ce_dice loss=ce seed=$s optim.optimizer.lr=0.009"
  done
}
train_one() {  # NAME OVERRIDES...
  local name=$1; shift
  if [ -f "$out/replayed/$name/report/summary.json" ]; then echo "[skip] replayed/$name"; return; fi
  mkdir -p "$out/replayed"
  echo "[start] replayed/$name $(date -u +%H:%M)"
  .venv/bin/ctbench train "$@" hydra.run.dir="$out/replayed/$name" resume=true >> "$out/replayed/$name.log" 2>&1
  echo "[done rc=$?] replayed/$name $(date -u +%H:%M)"
}
test_one() {  # NAME OVERRIDES...
  local name=$1 run=$out/replayed/$1; shift
  if [ -f "$out/final_replay_unet/$name/report/summary.json" ]; then echo "[skip] final_replay_unet/$name"; return; fi
  if [ ! -f "$run/report/summary.json" ]; then echo "[wait] final_replay_unet/$name: $run not complete"; return; fi
  mkdir -p "$out/final_replay_unet"
  echo "[start] final_replay_unet/$name $(date -u +%H:%M)"
  .venv/bin/ctbench eval ckpt_path="$run/checkpoints/last.ckpt" postprocess=null "$@" \
    hydra.run.dir="$out/final_replay_unet/$name" >> "$out/final_replay_unet/$name.log" 2>&1
  echo "[done rc=$?] final_replay_unet/$name $(date -u +%H:%M)"
}
export -f train_one test_one; export out
trainings | xargs -P 2 -L 1 bash -c 'train_one "$@"' _
trainings | while read -r name _; do
  .venv/bin/python - "$fresh/$name" "$out/replayed/$name" <<'PY'
import csv, json, sys
def record(run):
    summary = json.load(open(f"{run}/report/summary.json"))
    with open(f"{run}/report/per_case.csv", newline="") as f:
        rows = [{k: v for k, v in row.items() if k != "predict_seconds"} for row in csv.DictReader(f)]
    return summary["convergence"]["history"], summary["checkpoint_epoch"], rows
first, again = sys.argv[1:]
try:
    same = record(first) == record(again)
except FileNotFoundError as missing:
    print(f"MISSING {again}: {missing.filename}"); sys.exit()
print(("REPLAYED " if same else "DIFFERS ") + again)
PY
done
trainings | xargs -P 2 -L 1 bash -c 'test_one "$@"' _
