#!/usr/bin/env python
"""Time to Dice (issue 7, figure 4): ``ctbench train`` defaults against nnU-Net v2 on the same phantom.

ctbench side: runs ``ctbench train`` (defaults, plus any ``-o`` overrides) in a subprocess and reports
its wall time, the test split's mean Dice over liver, spleen and kidney, whether it reaches
``--target`` (default 0.85), and from its TensorBoard validation curve when the validation mean
first reached the target.

nnU-Net side: exports the same phantom in nnU-Net v2 raw layout (training = ctbench's train+val
cases, ``imagesTs`` = ctbench's test cases, their labels kept apart for scoring) and, when
``nnunetv2`` is importable, runs ``nnUNetv2_plan_and_preprocess`` and ``nnUNetv2_train DATASET
3d_fullres 0 -device cpu`` (its default plan and trainer) for at most ``--nnunet-minutes`` (default
30) of wall time, then predicts the test cases with its best checkpoint and scores them with
``ctbench score``. Without ``nnunetv2`` it prints a skip message (install: ``pip install
torch==2.13.0 nnunetv2``).

    .venv/bin/python scripts/time_to_dice.py                    # ctbench defaults + nnU-Net if installed
    .venv/bin/python scripts/time_to_dice.py --quick            # tiny phantom, checks the script runs
    .venv/bin/python scripts/time_to_dice.py --skip-ctbench --nnunet-minutes 60
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ORGANS = ("liver", "spleen", "kidney")
DATASET_ID = 501
DATASET_NAME = f"Dataset{DATASET_ID}_CTBenchPhantom"


def log(message: str) -> None:
    print(f"[time-to-dice {time.strftime('%H:%M:%S')}] {message}", flush=True)


def ctbench_command() -> list[str]:
    script = Path(sys.executable).parent / "ctbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ctbench.cli"]


def organ_mean(per_class: dict[str, Any]) -> float | None:
    values = [per_class[o]["dice"] for o in ORGANS if o in per_class and per_class[o].get("dice") is not None]
    return round(sum(values) / len(values), 4) if len(values) == len(ORGANS) else None


def validation_curve(run: Path, start_wall: float) -> list[dict[str, Any]]:
    """``val/dice_{organ}`` from the run's TensorBoard events: step, seconds since launch, organ mean."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((run / "tensorboard").rglob("events.out.tfevents.*"))
    if not events:
        return []
    acc = EventAccumulator(str(events[0].parent), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags().get("scalars", []))
    if not all(f"val/dice_{o}" in tags for o in ORGANS):
        return []
    series = {o: {e.step: e for e in acc.Scalars(f"val/dice_{o}")} for o in ORGANS}
    steps = sorted(set.intersection(*(set(s) for s in series.values())))
    curve = []
    for step in steps:
        points = [series[o][step] for o in ORGANS]
        curve.append({"step": int(step), "seconds": round(max(p.wall_time for p in points) - start_wall, 1),
                      "val_mean_dice": round(sum(p.value for p in points) / len(points), 4)})
    return curve


def run_ctbench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    run = work / "ctbench"
    if run.exists():
        shutil.rmtree(run)
    overrides = (["debug=fast"] if args.quick else []) + list(args.override)
    command = [*ctbench_command(), "train", *overrides, "progress_bar=false", f"hydra.run.dir={run}"]
    log("ctbench: " + " ".join(command[len(ctbench_command()):]))
    start_wall, t0 = time.time(), time.perf_counter()
    run.mkdir(parents=True)
    with open(work / "ctbench_train.log", "w") as out:
        proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=args.cwd,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ctbench train exited {proc.returncode}: see {work / 'ctbench_train.log'}")
    summary = json.loads((run / "report" / "summary.json").read_text())
    test = organ_mean(summary["per_class"])
    curve = validation_curve(run, start_wall)
    first = next((p for p in curve if p["val_mean_dice"] >= args.target), None)
    result = {"command": "ctbench " + " ".join(command[len(ctbench_command()):]), "wall_s": round(wall, 1),
              "train_seconds": summary.get("train_seconds"), "epochs": summary.get("epochs"),
              "test_mean_dice_liver_spleen_kidney": test,
              "test_dice": {o: summary["per_class"].get(o, {}).get("dice") for o in (*ORGANS, "lesion")},
              "reached_target_on_test": bool(test is not None and test >= args.target),
              "time_to_target_s": round(wall, 1) if test is not None and test >= args.target else None,
              "validation_curve": curve,
              "val_first_reached_target_s": first["seconds"] if first else None}
    log(f"ctbench: test mean Dice (liver, spleen, kidney) {test} after {wall:.0f} s")
    return result


# ---- nnU-Net -----------------------------------------------------------------------------------
def export_nnunet(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The phantom (as ctbench composes it) in nnU-Net v2 raw layout; test labels kept in ``labelsTs``."""
    from ctbench.config import compose
    from ctbench.data.datamodule import CTDataModule
    from ctbench.data.phantom_files import LABELS

    overrides = (["debug=fast"] if args.quick else []) + [o for o in args.override if o.startswith(("paths.", "dataset"))]
    cfg = compose("train", overrides)
    root = Path(args.cwd)
    cache = (root / cfg.dataset.cache_dir).resolve()
    cwd = os.getcwd()
    os.chdir(root)  # paths in the config are relative to the folder ctbench runs in
    try:
        data = CTDataModule(cfg.dataset, int(cfg.dims), int(cfg.fold), cache)
        data.prepare_data()
        data.setup()
    finally:
        os.chdir(cwd)
    raw = work / "nnunet" / "raw" / DATASET_NAME
    if raw.exists():
        shutil.rmtree(raw)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (raw / sub).mkdir(parents=True)
    training = data.split["train"] + data.split["val"]
    for case in training:
        shutil.copy(root / data.cases[case]["image"], raw / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.copy(root / data.cases[case]["label"], raw / "labelsTr" / f"{case}.nii.gz")
    for case in data.split["test"]:
        shutil.copy(root / data.cases[case]["image"], raw / "imagesTs" / f"{case}_0000.nii.gz")
        shutil.copy(root / data.cases[case]["label"], raw / "labelsTs" / f"{case}.nii.gz")
    names = list(cfg.dataset.class_names) if "class_names" in cfg.dataset else [LABELS[i] for i in sorted(LABELS)]
    (raw / "dataset.json").write_text(json.dumps({
        "name": DATASET_NAME, "description": "ctbench synthetic CT phantom (HU), exported by scripts/time_to_dice.py",
        "channel_names": {"0": "CT"}, "labels": {name: i for i, name in enumerate(names)},
        "numTraining": len(training), "file_ending": ".nii.gz"}, indent=2))
    log(f"nnU-Net export: {len(training)} training and {len(data.split['test'])} test cases in {raw}")
    return {"raw": str(raw), "training_cases": len(training), "test_cases": list(data.split["test"]),
            "labels": names}


def _run_limited(command: Sequence[str], env: dict[str, str], log_path: Path, seconds: float) -> tuple[int | None, float]:
    """Run ``command`` for at most ``seconds``; on time-out interrupt its process group (SIGINT, then KILL)."""
    t0 = time.perf_counter()
    with open(log_path, "a") as out:
        proc = subprocess.Popen(list(command), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=max(1.0, seconds)), time.perf_counter() - t0
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return None, time.perf_counter() - t0


def run_nnunet(args: argparse.Namespace, work: Path, export: dict[str, Any]) -> dict[str, Any]:
    base = work / "nnunet"
    env = {**os.environ, "nnUNet_raw": str(base / "raw"), "nnUNet_preprocessed": str(base / "preprocessed"),
           "nnUNet_results": str(base / "results"), "PYTHONWARNINGS": "ignore"}
    bindir = Path(sys.executable).parent

    def tool(name: str) -> str:
        return str(bindir / name) if (bindir / name).exists() else name

    log_path = base / "nnunet.log"
    budget = args.nnunet_minutes * 60.0
    t0 = time.perf_counter()
    log(f"nnU-Net: plan and preprocess (3d_fullres), then train fold 0 on CPU for the rest of {args.nnunet_minutes} min")
    code, plan_s = _run_limited([tool("nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", "3d_fullres",
                                 "-np", str(os.cpu_count() or 1), "--verify_dataset_integrity"], env, log_path, budget)
    result: dict[str, Any] = {"plan_preprocess_s": round(plan_s, 1), "budget_s": budget}
    if code != 0:
        result["error"] = f"plan_and_preprocess {'timed out' if code is None else f'exited {code}'}: see {log_path}"
        return result
    code, train_s = _run_limited([tool("nnUNetv2_train"), str(DATASET_ID), "3d_fullres", "0", "-device", "cpu"], env,
                                 log_path, budget - (time.perf_counter() - t0))
    result.update(train_s=round(train_s, 1), finished=code == 0, stopped_at_budget=code is None,
                  wall_to_checkpoint_s=round(time.perf_counter() - t0, 1))
    folds = list((base / "results").rglob("fold_0"))
    fold = folds[0] if folds else None
    ckpt = None
    for name in ("checkpoint_final.pth", "checkpoint_best.pth", "checkpoint_latest.pth"):
        if fold is not None and (fold / name).exists():
            ckpt = name
            break
    logs = sorted(fold.glob("training_log_*.txt")) if fold else []
    if logs:
        text = logs[-1].read_text(errors="replace")
        result["epochs_started"] = text.count("Epoch ") if "Epoch " in text else 0
    if ckpt is None:
        result["test_mean_dice_liver_spleen_kidney"] = None
        result["note"] = (f"no nnU-Net checkpoint after {result['wall_to_checkpoint_s']:.0f} s (it writes "
                          "checkpoint_best.pth at the end of an epoch): its Dice at the budget is undefined")
        return result
    raw = Path(export["raw"])
    pred = base / "predictions"
    t1 = time.perf_counter()
    code, _ = _run_limited([tool("nnUNetv2_predict"), "-i", str(raw / "imagesTs"), "-o", str(pred), "-d",
                            str(DATASET_ID), "-c", "3d_fullres", "-f", "0", "-chk", ckpt, "-device", "cpu"],
                           env, log_path, 3600)
    result.update(checkpoint=ckpt, predict_s=round(time.perf_counter() - t1, 1))
    if code != 0:
        result["error"] = f"nnUNetv2_predict failed: see {log_path}"
        return result
    score = base / "score"
    labels = [f"{i}={n}" for i, n in enumerate(export["labels"]) if i > 0]
    subprocess.run([*ctbench_command(), "score", str(pred), str(raw / "labelsTs"), "--out", str(score), "--labels",
                    *labels], check=True, capture_output=True, text=True)
    summary = json.loads((score / "summary.json").read_text())
    result["test_mean_dice_liver_spleen_kidney"] = organ_mean(summary["per_class"])
    result["test_dice"] = {o: summary["per_class"].get(o, {}).get("dice") for o in (*ORGANS, "lesion")}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=0.85, help="mean Dice over liver, spleen, kidney (0.85)")
    parser.add_argument("--quick", action="store_true", help="tiny phantom (debug=fast): checks the script runs")
    parser.add_argument("--skip-ctbench", action="store_true")
    parser.add_argument("--skip-nnunet", action="store_true", help="do not export or run nnU-Net")
    parser.add_argument("--nnunet-minutes", type=float, default=30.0, help="nnU-Net wall-time budget (30)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="Hydra override for ctbench train (repeatable; paths./dataset. ones also shape the export)")
    parser.add_argument("--cwd", type=Path, default=Path.cwd(), help="folder ctbench runs in (its ./data)")
    parser.add_argument("--workdir", type=Path, default=None, help="default outputs/time_to_dice/TIMESTAMP")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default WORKDIR/time_to_dice.json)")
    args = parser.parse_args(argv)
    args.cwd = args.cwd.resolve()
    work = (args.workdir or args.cwd / "outputs" / "time_to_dice" / time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    work.mkdir(parents=True, exist_ok=True)

    from ctbench.atomic import atomic_write_json
    from ctbench.provenance import machine_info, package_versions

    result: dict[str, Any] = {"target": args.target, "organs": list(ORGANS), "quick": args.quick,
                              "machine": machine_info(), "versions": package_versions(), "workdir": str(work)}
    if not args.skip_ctbench:
        result["ctbench"] = run_ctbench(args, work)
    if not args.skip_nnunet:
        result["nnunet_export"] = export_nnunet(args, work)
        if importlib.util.find_spec("nnunetv2") is None:
            message = ("nnunetv2 is not installed: nnU-Net side skipped (the phantom is exported in nnU-Net v2 "
                       f"layout under {result['nnunet_export']['raw']}; `pip install torch==2.13.0 nnunetv2` "
                       "and rerun to compare)")
            print(message)
            result["nnunet"] = {"skipped": message}
        else:
            import importlib.metadata as md

            result["versions"]["nnunetv2"] = md.version("nnunetv2")
            result["nnunet"] = run_nnunet(args, work, result["nnunet_export"])
    c, n = result.get("ctbench", {}), result.get("nnunet", {})
    if c.get("time_to_target_s") and n.get("test_mean_dice_liver_spleen_kidney") is not None:
        reached = n["test_mean_dice_liver_spleen_kidney"] >= args.target  # at its last checkpoint: an upper bound
        result["comparison"] = {
            "nnunet_reached_target": bool(n["test_mean_dice_liver_spleen_kidney"] >= args.target),
            "nnunet_dice_at_budget": n["test_mean_dice_liver_spleen_kidney"],
            "ratio_ctbench_to_nnunet_wall": round(c["time_to_target_s"] / n["wall_to_checkpoint_s"], 3)
            if reached else None}
    out = args.out or work / "time_to_dice.json"
    atomic_write_json(out, result)
    if c:
        print(f"ctbench train: test mean Dice (liver, spleen, kidney) {c['test_mean_dice_liver_spleen_kidney']} "
              f"in {c['wall_s']} s wall; target {args.target} {'reached' if c['reached_target_on_test'] else 'NOT reached'}"
              + (f"; validation mean first >= target after {c['val_first_reached_target_s']} s"
                 if c["val_first_reached_target_s"] else ""))
    if n and "skipped" not in n:
        print(f"nnU-Net 3d_fullres: test mean Dice {n.get('test_mean_dice_liver_spleen_kidney')} after "
              f"{n.get('wall_to_checkpoint_s')} s (budget {n['budget_s']:.0f} s) {n.get('note', '')}")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
