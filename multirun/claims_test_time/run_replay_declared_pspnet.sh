#!/bin/bash
# C11a on the declared draw (seeds 0-2) tested from the final checkpoint, by replaying the study's PSPNet runs at
# their own commits (outside multirun/claims: no declared verdict reads these runs or tests).
# Why: of the study's decisive verdicts, C1 (its seeds 0-2 trained again) and C14b/C14c
# (run_replay_declared_deeplab.sh) have been tested from the final checkpoint on the declared draw; C8 and C18a
# cannot be (their U-Net runs were trained on the Intel CPU, whose float kernels differ: they never replay here).
# C11a's runs were trained on this kind of CPU (AMD EPYC) at commits 7e4bfbfb and 87c7ce7a (4 Dec), none resumed;
# their weights were not kept. The 3D PSPNet tests best.ckpt from epochs 159-179 of 250, the 2D from 39-54 of 60.
# The same steps as run_replay_declared_deeplab.sh, each run with its own commit's src/ and configs/ on a copy
# of data/phantom_study:
#   1. replayed_declared/NAME: the 2D and 3D PSPNet seeds 0-2, each with its committed .hydra/overrides.yaml, two
#      jobs side by side, the 3D runs first; REPLAYED or DIFFERS against multirun/claims/NAME (the validation curve,
#      the tested epoch, every test value but predict_seconds);
#   2. best_declared/NAME and final_declared/NAME: each tested by HEAD's `ctbench eval` from best.ckpt and from
#      last.ckpt, no post-processing; EVAL SAME or EVAL DIFFERS against the committed test.
# Declared before any of these runs and tests (7 Dec, this file's commit). Read when all 18 steps are complete:
#   PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_test_time/best_declared --as-trained
#   PYTHONPATH=src .venv/bin/python scripts/retrained_sensitivity.py multirun/claims_test_time/final_declared --as-trained
# (the first table of each, the declared family of 66; the folders also hold the DeepLab tests, which touch no
# side of C11a). Only the row of C11a is read, and only if all six runs REPLAYED and EVAL SAME; otherwise the runs
# that differ are named and C11a is not read from these folders. A verdict that differs between the two reads
# *sensitive to the test-time choice* beside the declared one, which stays.
# A finished step (report/summary.json written) is skipped. Usage: run_replay_declared_pspnet.sh
cd "$(dirname "$0")/../.."  # the repository root
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
out=$PWD/multirun/claims_test_time
study=$PWD/multirun/claims
trees=/tmp/ctbench-replay-trees
data=/tmp/ctbench-replay-data
names() { for d in 3 2; do for s in 0 1 2; do echo "pspnet-dice_ce-${d}d-seed$s"; done; done; }
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
