"""Do the commits the study's runs were trained at train and score a run as HEAD does?

The study's runs were trained over days, at many commits (``git_commit`` in each run's ``report/summary.json``),
so the two sides of a claim are often runs of different code. This trains one small fixed config with each of
those commits' ``src/`` and ``configs/`` (taken with ``git archive``, run by this checkout's Python) and with
HEAD's, and compares the results bit for bit: the final weights (``checkpoints/last.ckpt``), the validation
Dice of every epoch and every value of the test cases' ``report/per_case.csv`` as the study reads them
(timings left out). Equal bits mean that, for this path (the phantom reader, the training chain and its random
stream, the U-Net and the loss, the learning-rate schedule, validation with its best checkpoint,
sliding-window testing and every metric), the commit trains and scores as HEAD does. An evaluation of another
run's checkpoint (C3's CRF) counts as that run's commit. Other models and losses are not run: the last lines
print the ``git diff --stat`` of the training and scoring files between the first and the last commit.
Then, per claim, each side's runs trained at a commit that does not train as HEAD, and those made on another
CPU than this machine's (``predict_hardware``; float kernels differ between CPUs, so such a run never replays
bit for bit here).

The config: ``dataset=phantom_tiny model=unet loss=dice_ce dims=2`` (``--loss``, ``--dims``), 4 epochs,
validation every epoch (so that a change to the training stream after the first validation shows; ``--epochs``,
``--val-every``), one warm-up step (the study's runs are long enough that no commit shortened their warm-up; a
4-epoch run's default warm-up would be), one torch thread. About 20-40 s a commit.

    PYTHONPATH=src .venv/bin/python scripts/commit_replay_audit.py multirun/claims --jobs 2
    PYTHONPATH=src .venv/bin/python scripts/commit_replay_audit.py multirun/claims --epochs 5 --val-every 5 \
        --commits 9cddc342 ba3ec25a
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

OVERRIDES = ["dataset=phantom_tiny", "model=unet", "seed=0", "trainer=cpu",
             "optim.scheduler.warmup_steps=1", "progress_bar=false"]
TRAINING_PATHS = ["src/ctbench/data", "src/ctbench/engine", "src/ctbench/models", "src/ctbench/losses",
                  "src/ctbench/metrics.py", "src/ctbench/lesion_metrics.py", "src/ctbench/surface_distance.py",
                  "configs/dataset", "configs/model", "configs/loss", "configs/optim", "configs/trainer",
                  "configs/train.yaml", "configs/study", "configs/experiment"]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()


def training_commits(folders: list[Path]) -> dict[Path, str]:
    """Each run folder below ``folders`` -> the commit its weights were trained at (an evaluation of another
    run's checkpoint, e.g. with a CRF, is credited to that run's commit)."""
    commits: dict[Path, str] = {}
    for folder in folders:
        for summary_file in sorted(folder.glob("*/report/summary.json")):
            summary = json.loads(summary_file.read_text())
            trained = Path(str(summary.get("checkpoint") or "")).parent.parent / "report" / "summary.json"
            if summary.get("train_seconds") is None and trained.is_file():
                summary = json.loads(trained.read_text())
            if summary.get("git_commit"):
                commits[summary_file.parent.parent] = summary["git_commit"]
    return commits


def extract(commit: str, dest: Path) -> None:
    """``src/`` and ``configs/`` of ``commit`` into ``dest`` (its package symlink to configs/ included)."""
    if (dest / "src" / "ctbench").is_dir():
        return
    archive = subprocess.run(["git", "archive", commit, "src", "configs"], check=True, capture_output=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="tar")


def train(commit: str, work: Path, epochs: int, val_every: int, dims: int = 2, loss: str = "dice_ce") -> Path:
    """Train the fixed config in ``dims`` with ``loss`` for ``epochs``, validating every ``val_every``, with
    ``commit``'s code; returns the run folder."""
    name = f"{commit[:12]}-{dims}d-e{epochs}-v{val_every}" + ("" if loss == "dice_ce" else f"-{loss}")
    tree, run = work / "trees" / commit[:12], work / "runs" / name
    extract(commit, tree)
    if (run / "report" / "per_case.csv").is_file():
        return run
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = "import sys; from ctbench.cli import main; sys.argv[0] = 'ctbench'; sys.exit(main())"
    args = [sys.executable, "-c", code, "train", *OVERRIDES, f"dims={dims}", f"loss={loss}", f"trainer.max_epochs={epochs}",
            f"trainer.check_val_every_n_epoch={val_every}", f"paths.data_dir={work / 'data'}", f"hydra.run.dir={run}"]
    run.parent.mkdir(parents=True, exist_ok=True)
    log = run.with_suffix(".log")
    with open(log, "w") as out:
        done = subprocess.run(args, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{commit[:12]}: exit {done.returncode}, see {log}")
    return run


def fingerprint(run: Path) -> dict[str, object]:
    """The run's weights' digest, validation history and test values."""
    import torch

    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().contiguous().numpy().tobytes())
    summary = json.loads((run / "report" / "summary.json").read_text())
    history = (summary.get("convergence") or {}).get("history")
    with open(run / "report" / "per_case.csv") as f:
        rows = {(r["case"], r["class"]): r for r in csv.DictReader(f)}
    return {"weights": digest.hexdigest(), "history": history, "rows": rows}


def largest_difference(a: dict, b: dict) -> float:
    """The largest absolute difference between two runs' per-case values as the study reads them
    (:func:`ctbench.metrics.with_worst_case`: the precision of an empty prediction, written 1 before 6 Dec 2026,
    reads 0), timings left out; inf when the cases, classes or columns differ."""
    from ctbench.metrics import with_worst_case

    if a.keys() != b.keys():
        return math.inf
    worst = 0.0
    for key, row in a.items():
        other = b[key]
        for column in row:
            if column in ("case", "class") or column.endswith("seconds"):
                continue
            if column not in other:
                return math.inf
            x, y = with_worst_case(row, column), with_worst_case(other, column)
            if math.isnan(x) != math.isnan(y):
                return math.inf
            if not math.isnan(x):
                worst = max(worst, abs(x - y))
    return worst


def run_cpu(run: Path) -> str:
    """The CPU model a run was tested on (``predict_hardware`` in its ``summary.json``), trained on in the same
    process unless it was resumed."""
    summary = json.loads((run / "report" / "summary.json").read_text())
    return str(summary.get("predict_hardware") or "unknown").split(",")[0].removeprefix("CPU ")


def claim_table(commits: dict[Path, str], as_head: set[str], claims_dir: Path) -> list[str]:
    """Per claim, each side's runs, how many of them were trained at a commit that does not train as HEAD, and
    how many on another CPU than this machine's (float kernels differ between CPUs: a draw, not a bias)."""
    from ctbench.provenance import machine_info
    from ctbench.reports.claims import load_claims, sides
    from ctbench.reports.collect import collect

    here = machine_info()["cpu"]
    runs, _ = collect(sorted({path.parent for path in commits}))
    lines = [f"this machine: {here}", "",
             "| claim | candidate: runs, trained not as HEAD, on another CPU | baseline: runs, trained not as HEAD, "
             "on another CPU |", "|---|---|---|"]
    for claim in load_claims(claims_dir):
        cells = []
        for side in sides(claim, runs):
            other = [r for r in side if commits.get(r.path.resolve(), commits.get(r.path)) not in as_head]
            elsewhere = [r for r in side if run_cpu(r.path) != here]
            cells.append(f"{len(side)}, {len(other)}, {len(elsewhere)}")
        lines.append(f"| {claim.id} | {cells[0]} | {cells[1]} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="study folders whose runs' commits are replayed")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ctbench-commit-audit"),
                        help="where the commits' trees and runs go (reused: a finished run is not trained again)")
    parser.add_argument("--jobs", type=int, default=2, help="commits trained side by side")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the fixed config (default 4)")
    parser.add_argument("--val-every", type=int, default=1,
                        help="validate every N epochs (default 1: a change to the stream after a validation shows)")
    parser.add_argument("--dims", type=int, choices=(2, 3), default=2, help="the U-Net's dimensions (default 2)")
    parser.add_argument("--loss", default="dice_ce", help="the loss config (default dice_ce)")
    parser.add_argument("--commits", nargs="+", help="only these commits (default: every run's)")
    parser.add_argument("--claims", type=Path, default=Path("configs/claims"),
                        help="claim files: each side's runs trained at a commit that does not train as HEAD")
    parser.add_argument("--out", type=Path, help="also write the table as CSV here")
    args = parser.parse_args()

    by_run = training_commits(args.folders)
    counts = {c: sum(1 for v in by_run.values() if v == c) for c in set(by_run.values())}
    if not counts:
        sys.exit(f"no run with a git_commit below {', '.join(map(str, args.folders))}: give the study's folder")
    head = git("rev-parse", "HEAD")
    chosen = [git("rev-parse", c) for c in args.commits] if args.commits else list(counts)
    dated = sorted(chosen, key=lambda c: int(git("show", "-s", "--format=%ct", c)))
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"HEAD {head[:8]} first (it generates the phantom), then {len(dated)} commits, {args.jobs} at a time; "
          f"a {args.dims}D U-Net with {args.loss}, {args.epochs} epochs, validation every {args.val_every}", flush=True)
    reference = fingerprint(train(head, args.work, args.epochs, args.val_every, args.dims, args.loss))

    def one(commit: str) -> dict[str, object]:
        try:
            found = fingerprint(train(commit, args.work, args.epochs, args.val_every, args.dims, args.loss))
        except (RuntimeError, OSError, KeyError) as error:
            return {"commit": commit, "error": str(error)}
        row = {"commit": commit, "weights_equal": found["weights"] == reference["weights"],
               "history_equal": found["history"] == reference["history"],
               "test_max_abs_difference": largest_difference(found["rows"], reference["rows"])}
        print(f"{commit[:8]}: weights {'equal' if row['weights_equal'] else 'DIFFER'}, validation history "
              f"{'equal' if row['history_equal'] else 'DIFFERS'}, test values max |diff| "
              f"{row['test_max_abs_difference']:.3g}", flush=True)
        return row

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one, dated))

    print("\n| commit | date | runs trained | weights as HEAD | validation Dice as HEAD | test values, largest "
          "difference |\n|---|---|---:|---|---|---:|")
    for row in rows:
        commit = str(row["commit"])
        date = git("show", "-s", "--format=%ci", commit)[:16]
        if "error" in row:
            print(f"| {commit[:8]} | {date} | {counts.get(commit, 0)} | error: {row['error']} | | |")
            continue
        print(f"| {commit[:8]} | {date} | {counts.get(commit, 0)} | {'yes' if row['weights_equal'] else '**no**'} | "
              f"{'yes' if row['history_equal'] else '**no**'} | {row['test_max_abs_difference']:.3g} |")
    if args.out:
        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, ["commit", "runs", "weights_equal", "history_equal",
                                        "test_max_abs_difference", "error"])
            writer.writeheader()
            for row in rows:
                writer.writerow({"runs": counts.get(str(row["commit"]), 0), **row})
    if not args.commits:
        as_head = {str(r["commit"]) for r in rows if r.get("weights_equal") and r.get("history_equal")
                   and r.get("test_max_abs_difference") == 0} | {head}
        print("\n" + "\n".join(claim_table(by_run, as_head, args.claims)))
    changed = git("diff", "--stat", dated[0], dated[-1], "--", *TRAINING_PATHS)
    print(f"\nfiles of the training and scoring path changed between {dated[0][:8]} and {dated[-1][:8]}:\n{changed}")


if __name__ == "__main__":
    main()
