"""Cross-patient transfer on real CT: trained on non-contrast CT, tested on another patient's contrast phase.

Training data: the two real TotalSegmentator CTs of ``totalseg-abdomen-ct`` (non-contrast, 3 mm, RAS),
written once as an MSD / nnU-Net v2 folder (``--work``/dataset) with their TotalSegmentator label maps
remapped to liver=1 (TS 5), spleen=2 (TS 1), kidney=3 (TS 2 and 3), everything else 0. Both cases train:
ctbench's own splits would hold one of the two out in every fold, so the folder carries nnU-Net's
``splits_final.json`` with one fold that trains on both and validates on the smaller one
(``dataset.splits=nnunet``). Validation inside the budget is off (that case is a training case, so it
selects nothing): each run trains for its wall-clock budget (``trainer.max_time``, epochs unbounded), and
the checkpoint it ends with is the one tested.

Test data: another patient's contrast-phase series, ``totalseg-ct-dicom/dicom`` (20 slices of 512 x 512,
0.98 x 0.98 x 2 mm), predicted from the DICOM folder by ``ctbench predict`` and scored by ``ctbench score``
against ``example_seg_dicom.nii.gz`` remapped the same way (it has no kidney; its rows are flipped against
ctbench's converter, and ``ctbench score`` reorients the prediction onto it). Both label maps are
TotalSegmentator output, not manual ground truth.

One run per (budget, augment, seed): 3D U-Net with Dice + CE (the defaults) at 3 mm, in ``--work``/runs/.
A run whose score is saved is not repeated. Results: a table on the console, ``--work``/cross_patient.csv
and ``--work``/cross_patient.md (with the exact commands); every command's output in
``--work``/commands.log.

    .venv/bin/python scripts/cross_patient.py [--budgets 60 300] [--augment none nnunet] [--seeds 0]
    .venv/bin/python scripts/cross_patient.py --budgets 10 --augment none --threads 1 --work /tmp/cp_smoke
    .venv/bin/python scripts/cross_patient.py --budgets 120 'dataset.patch_size_3d=[96,96,96]'
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from rich.console import Console
from rich.table import Table

#: ctbench label value -> the TotalSegmentator v2 "total" values merged into it
REMAP = {1: (5,), 2: (1,), 3: (2, 3)}
CLASS_NAMES = ("background", "liver", "spleen", "kidney")
SCORED = ("liver", "spleen")
#: case id -> (image, label) in totalseg-abdomen-ct
TRAIN_CASES = {"example_ct": ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz"),
               "example_ct_sm": ("example_ct_sm.nii.gz", "example_seg.nii.gz")}
VAL_CASE = "example_ct_sm"
#: every training run: MSD reader, 3 mm as the files are, 64^3 patches (192 mm), no validation in the budget
TRAIN_OVERRIDES = ("dataset=msd", "dataset.splits=nnunet", "dims=3", "dataset.preprocessing.spacing=[3,3,3]",
                   "dataset.patch_size_3d=[64,64,64]", "trainer.max_epochs=100000",
                   "trainer.check_val_every_n_epoch=100000", "progress_bar=false")
COLUMNS = ("budget_s", "augment", "seed", "liver_dice", "spleen_dice", "liver_volume_ratio",
           "spleen_volume_ratio", "epochs", "steps", "fit_s", "wall_s")
TITLES = ("budget s", "augment", "seed", "liver Dice", "spleen Dice", "liver pred/true", "spleen pred/true",
          "epochs", "steps", "fit s", "wall s")


def ctbench(args: list[str], log: Path, threads: int) -> tuple[str, float]:
    """Run ``ctbench ARGS`` (the executable beside this Python) with ``OMP_NUM_THREADS=threads``, its output
    appended to ``log``; stop on failure. Returns the command as a shell line and its wall seconds."""
    command = [str(Path(sys.executable).parent / "ctbench"), *args]
    line = f"OMP_NUM_THREADS={threads} {shlex.join(command)}"
    with log.open("a") as fh:
        fh.write(f"\n$ {line}\n")
        fh.flush()
        start = time.perf_counter()
        done = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{line} failed (exit {done.returncode}); see {log}")
    return line, seconds


def require(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(f"{path}: missing; this script needs the shared real CT data (see --data)")
    return path


def remapped(label_path: Path) -> nib.Nifti1Image:
    """A TotalSegmentator label map as liver=1, spleen=2, kidney=3, other 0, with the file's own affine."""
    image = nib.load(str(label_path))
    source = np.asarray(image.dataobj)
    out = np.zeros(source.shape, np.uint8)
    for value, ts_values in REMAP.items():
        out[np.isin(source, ts_values)] = value
    header = image.header.copy()
    header.set_data_dtype(np.uint8)
    return nib.Nifti1Image(out, image.affine, header)


def training_set(data: Path, root: Path) -> Path:
    """The 2-case MSD / nnU-Net v2 folder with a one-fold ``splits_final.json``, written once (rewriting
    would change the files' stamps and so invalidate ctbench's preprocessing cache); ``dataset.json`` last."""
    source = require(data / "totalseg-abdomen-ct")
    files = {case: (require(source / image), require(source / label))
             for case, (image, label) in TRAIN_CASES.items()}
    if (root / "dataset.json").exists():
        return root
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    for case, (image, label) in files.items():
        shutil.copyfile(image, root / "imagesTr" / f"{case}_0000.nii.gz")
        nib.save(remapped(label), str(root / "labelsTr" / f"{case}.nii.gz"))
    folds = [{"train": sorted(files), "val": [VAL_CASE]}]
    (root / "splits_final.json").write_text(json.dumps(folds, indent=1))
    manifest = {"name": "cross_patient", "description": f"TotalSegmentator test CTs from {source}",
                "channel_names": {"0": "CT"}, "labels": {name: i for i, name in enumerate(CLASS_NAMES)},
                "numTraining": len(files), "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(manifest, indent=1))
    return root


def volume_ratios(per_case_csv: Path) -> dict[str, float]:
    """Predicted / true voxels per scored class (NaN when the truth has none)."""
    with per_case_csv.open() as fh:
        counts = {row["class"]: (int(row["pred_voxels"]), int(row["truth_voxels"]))
                  for row in csv.DictReader(fh)}
    return {name: pred / truth if truth else float("nan") for name, (pred, truth) in counts.items()
            if name in SCORED}


def max_time(seconds: int) -> str:
    """Lightning's ``DD:HH:MM:SS``."""
    days, rest = divmod(seconds, 86400)
    return f"{days:02d}:{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def one_run(work: Path, dataset: Path, dicom: Path, truth_label: Path, budget: int, augment: str, seed: int,
            threads: int, overrides: list[str]) -> tuple[dict, list[str]]:
    """Train, predict the DICOM series, score it: the table row and the three commands (a run with a saved
    result is read back)."""
    run = work / "runs" / f"budget{budget}s-{augment}-seed{seed}"
    log, result = work / "commands.log", run / "cross_patient.json"
    if result.exists():
        saved = json.loads(result.read_text())
        return saved["row"], saved["commands"]
    shutil.rmtree(run, ignore_errors=True)
    train = [*TRAIN_OVERRIDES, f"dataset.root={dataset}", f"dataset.cache_dir={work / 'cache'}",
             f"paths.root_dir={work}", f"augment={augment}", f"seed={seed}",
             f'trainer.max_time="{max_time(budget)}"', f"hydra.run.dir={run}", *overrides]
    train_line, wall = ctbench(["train", *train], log, threads)
    summary = json.loads((run / "report" / "summary.json").read_text())
    masks = run / "pred_dicom"
    predict_line, _ = ctbench(["predict", f"ckpt_path={run / 'checkpoints' / summary['checkpoint']}",
                               f"input={dicom}", f"output_dir={masks}", "overwrite=true",
                               f"hydra.run.dir={run / 'predict'}"], log, threads)
    (pred,) = sorted(masks.glob("*.nii.gz"))
    truth = work / "truth"
    truth.mkdir(exist_ok=True)
    nib.save(remapped(truth_label), str(truth / pred.name))  # ctbench score pairs files by name
    score = run / "score_dicom"
    score_line, _ = ctbench(["score", str(masks), str(truth), "--out", str(score),
                             "--labels", *(f"{CLASS_NAMES.index(n)}={n}" for n in SCORED)], log, threads)
    per_class = json.loads((score / "summary.json").read_text())["per_class"]
    ratios = volume_ratios(score / "per_case.csv")
    row = {"budget_s": budget, "augment": augment, "seed": seed,
           **{f"{n}_dice": round(float(per_class[n]["dice"]), 4) for n in SCORED},
           **{f"{n}_volume_ratio": round(ratios[n], 3) for n in SCORED},
           "epochs": int(summary["epochs"]), "steps": int(summary["checkpoint_step"]),
           "fit_s": float(summary["train_seconds"]), "wall_s": round(wall, 1)}
    commands = [train_line, predict_line, score_line]
    result.write_text(json.dumps({"row": row, "commands": commands}, indent=1))
    return row, commands


def write_outputs(work: Path, rows: list[dict], commands: list[list[str]]) -> Table:
    """``cross_patient.csv`` and ``cross_patient.md``; returns the console table."""
    with (work / "cross_patient.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    table = Table(title="trained on 2 non-contrast CTs -> another patient's contrast-phase DICOM series")
    for title in TITLES:
        table.add_column(title, justify="left" if title == "augment" else "right")
    lines = ["# Cross-patient transfer: 2 non-contrast CTs -> a contrast-phase DICOM series", "",
             "| " + " | ".join(TITLES) + " |", "|" + "---|" * len(TITLES)]
    for row in rows:
        cells = [str(row[c]) for c in COLUMNS]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Dice and predicted / true volume on the whole series (TotalSegmentator's label map as the "
              "truth). epochs: epochs reached (the budget may cut the last one short); steps: optimizer steps "
              "of the tested checkpoint; fit s: the budgeted `fit`; wall s: the whole "
              "`ctbench train` (caching, fit, test on the validation case).", "", "## Commands", ""]
    for row, run_commands in zip(rows, commands, strict=True):
        lines += [f"budget {row['budget_s']} s, augment {row['augment']}, seed {row['seed']}:", "", "```",
                  *run_commands, "```", ""]
    (work / "cross_patient.md").write_text("\n".join(lines))
    return table


#: the shared real CT beside the repository checkout (``REPO/../shared/data/real``), wherever it is cloned
SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[60, 300], help="training seconds per run")
    parser.add_argument("--augment", nargs="+", default=["none", "nnunet"],
                        choices=["none", "light", "nnunet"], help="the augment config group")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of every ctbench command")
    parser.add_argument("--work", type=Path, default=Path("data/cross_patient"))
    parser.add_argument("--data", type=Path, default=SHARED_REAL,
                        help="the folder holding totalseg-abdomen-ct/ and totalseg-ct-dicom/ "
                             "(default: ../shared/data/real beside the repository)")
    parser.add_argument("overrides", nargs="*", help="more overrides for every `ctbench train`")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: no such folder; pass --data, the folder holding the shared real CT")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    dataset = training_set(args.data, work / "dataset")
    dicom = require(args.data / "totalseg-ct-dicom" / "dicom")
    truth_label = require(args.data / "totalseg-ct-dicom" / "example_seg_dicom.nii.gz")
    console = Console(width=None if sys.stdout.isatty() else 140)  # the whole table in a log file too
    rows, commands = [], []
    for budget in args.budgets:
        for augment in args.augment:
            for seed in args.seeds:
                row, run_commands = one_run(work, dataset, dicom, truth_label, budget, augment, seed,
                                            args.threads, args.overrides)
                console.print(f"budget {budget} s, {augment}, seed {seed}: liver Dice {row['liver_dice']}, "
                              f"spleen Dice {row['spleen_dice']}, {row['epochs']} epochs", soft_wrap=True)
                rows.append(row)
                commands.append(run_commands)
    console.print(write_outputs(work, rows, commands))
    console.print(f"wrote {work / 'cross_patient.csv'} and {work / 'cross_patient.md'}; "
                  f"command output: {work / 'commands.log'}", soft_wrap=True)


if __name__ == "__main__":
    main()
