#!/bin/bash
# C14b and C14c on the declared draw (seeds 0-2) tested from the final checkpoint, by replaying the study's DeepLab
# runs at their own commits (outside multirun/claims: no declared verdict reads these runs or tests).
# Why: on the fresh seeds 3-5, C14b's *contradicted* (DeepLab v3 below v2) reads inconclusive from the final
# checkpoint, the same estimate with a wider interval (run_replay_final.sh); C14c's *reproduced* reads the same.
# On the declared draw neither was tested from the final checkpoint: the weights of multirun/claims' DeepLab runs
# were not kept. They were trained on 2 Dec at commits c68b481d (v2) and 1d8f39dc (v3, v3+), before ba3ec25, on
# this kind of CPU (AMD EPYC); scripts/commit_replay_audit.py finds that such commits train differently from HEAD
# (their training stream restarts at the first validation), so each is replayed with its own commit's src/ and
# configs/ (git archive, run by this checkout's Python, one thread, as that script does) on a copy of
# data/phantom_study (its generator unchanged since e175023, 2 Dec 09:50, before these runs).
#   1. replayed_declared/NAME: DeepLab v2, v3 and v3+ seeds 0-2, each with its committed .hydra/overrides.yaml,
#      two jobs side by side. A run *replays* when its validation curve, its tested epoch and every value of its
#      test per_case.csv (all columns but predict_seconds) equal multirun/claims/NAME's: REPLAYED or DIFFERS.
#      Expected to differ: deeplabv3 seed 0, stopped by SIGTERM at epoch 0 step 13 and resumed (its train.log); its
#      replay trains uninterrupted, a new draw of that one run.
#   2. best_declared/NAME and final_declared/NAME: each replayed run tested with HEAD's `ctbench eval` from
#      best.ckpt and from last.ckpt, no post-processing, with its training overrides. Where a run replays, its
#      best_declared test should equal the committed test: EVAL SAME or EVAL DIFFERS (HEAD's scoring against the
#      2 Dec commit's).
# Declared before any of these runs and tests (7 Dec, this file's commit). Read when all 27 steps are complete:
#   PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_test_time/best_declared --as-trained
#   PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_test_time/final_declared --as-trained
# (the first table of each: the runs in the study's places, the declared family of 66). Only the rows of C14b and
# C14c are read (the others set these DeepLab tests against arms tested otherwise). The two readings are the same
# nine runs scored by the same code, from the checkpoint the 8 validation cases picked and from the end of the
# schedule; a verdict that differs reads *sensitive to the test-time choice* beside the declared one, which stays.
# Where every run of a claim REPLAYED and EVAL SAME, its best_declared reading is the declared verdict itself; where
# deeplabv3 seed 0 DIFFERS, C14b and C14c on these runs are a draw with that one run new, and are said so.
# A finished step (report/summary.json written) is skipped. Usage: run_replay_declared_deeplab.sh
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
out=$PWD/multirun/claims_test_time
study=$PWD/multirun/claims
trees=/tmp/ctbench-replay-trees
data=/tmp/ctbench-replay-data
names() { for m in deeplabv2 deeplabv3 deeplabv3p; do for s in 0 1 2; do echo "$m-dice_ce-2d-seed$s"; done; done; }
mkdir -p "$trees" "$data" "$out/replayed_declared"
[ -d "$data/phantom_study" ] || cp -r data/phantom_study "$data/"
for c in $(names | while read -r n; do python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['git_commit'])" "$study/$n/report/summary.json"; done | sort -u); do
  [ -d "$trees/$c/src/ctbench" ] || { mkdir -p "$trees/$c"; git archive "$c" src configs | tar -x -C "$trees/$c"; }
done
train_one() {  # NAME
  local name=$1 commit overrides
  if [ -f "$out/replayed_declared/$name/report/summary.json" ]; then echo "[skip] replayed_declared/$name"; return; fi
  commit=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['git_commit'])" "$study/$name/report/summary.json")
  mapfile -t overrides < <(sed -n 's/^- //p' "$study/$name/.hydra/overrides.yaml")
  echo "[start] replayed_declared/$name at ${commit:0:8} $(date -u +%H:%M)"
  (cd "$trees/$commit" && PYTHONPATH="$trees/$commit/src" "$py" -c \
    "import sys; from ctbench.cli import main; sys.argv[0] = 'ctbench'; sys.exit(main())" train "${overrides[@]}" \
    paths.data_dir="$data" hydra.run.dir="$out/replayed_declared/$name") >> "$out/replayed_declared/$name.log" 2>&1
  echo "[done rc=$?] replayed_declared/$name $(date -u +%H:%M)"
}
test_one() {  # NAME CHECKPOINT(best|last) FOLDER
  local name=$1 ckpt=$2 folder=$3 run=$out/replayed_declared/$1 overrides
  if [ -f "$out/$folder/$name/report/summary.json" ]; then echo "[skip] $folder/$name"; return; fi
  if [ ! -f "$run/report/summary.json" ]; then echo "[wait] $folder/$name: $run not complete"; return; fi
  mapfile -t overrides < <(sed -n 's/^- //p' "$study/$name/.hydra/overrides.yaml" | grep -v '^resume=')
  mkdir -p "$out/$folder"
  echo "[start] $folder/$name $(date -u +%H:%M)"
  .venv/bin/ctbench eval ckpt_path="$run/checkpoints/$ckpt.ckpt" postprocess=null "${overrides[@]}" \
    hydra.run.dir="$out/$folder/$name" >> "$out/$folder/$name.log" 2>&1
  echo "[done rc=$?] $folder/$name $(date -u +%H:%M)"
}
compare() {  # COMMITTED AGAIN LABEL
  # replay: the validation curve, the tested epoch and every test value (all columns but predict_seconds) equal;
  # eval: every test value of the committed per_case.csv as the study reads it (ctbench.metrics.with_worst_case:
  # an empty prediction's precision, written 1 before 6 Dec, reads 0) equals HEAD's eval of the same checkpoint
  # (columns HEAD adds are not compared); prints the largest difference
  PYTHONPATH=src .venv/bin/python - "$@" <<'PY'
import csv, json, math, sys
from ctbench.metrics import with_worst_case
first, again, label = sys.argv[1:]
def rows(run):
    with open(f"{run}/report/per_case.csv", newline="") as f:
        return {(r["case"], r["class"]): r for r in csv.DictReader(f)}
try:
    a, b = rows(first), rows(again)
    if label == "replay":
        history = lambda run: (lambda s: (s["convergence"]["history"], s["checkpoint_epoch"]))(
            json.load(open(f"{run}/report/summary.json")))
        strip = lambda t: {k: {c: v for c, v in r.items() if c != "predict_seconds"} for k, r in t.items()}
        print(("REPLAYED " if history(first) == history(again) and strip(a) == strip(b) else "DIFFERS ") + again)
        sys.exit()
    worst = 0.0 if a.keys() == b.keys() else math.inf
    for key in a.keys() & b.keys():
        for column in a[key]:
            if column in ("case", "class", "predict_seconds"):
                continue
            x, y = with_worst_case(a[key], column), with_worst_case(b[key], column) if column in b[key] else math.inf
            worst = max(worst, 0.0 if (math.isnan(x) and math.isnan(y)) else abs(x - y) if not math.isnan(x - y) else math.inf)
    print(("EVAL SAME " if worst == 0 else f"EVAL DIFFERS (largest difference {worst:.3g}) ") + again)
except FileNotFoundError as missing:
    print(f"MISSING {again}: {missing.filename}")
PY
}
py=$PWD/.venv/bin/python
export -f train_one test_one; export out study trees data py
names | xargs -P 2 -L 1 bash -c 'train_one "$@"' _
names | while read -r name; do compare "$study/$name" "$out/replayed_declared/$name" replay; done
names | while read -r name; do echo "$name best best_declared"; echo "$name last final_declared"; done \
  | xargs -P 2 -L 1 bash -c 'test_one "$@"' _
names | while read -r name; do compare "$study/$name" "$out/best_declared/$name" eval; done
