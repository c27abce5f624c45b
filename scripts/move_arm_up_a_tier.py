#!/usr/bin/env python
"""Retire an arm's runs when the convergence gate moves it up an epoch tier: keep their learning curves, remove
the run folders, their logs and the arm's learning-rate choice, so that ``ctbench study run`` trains it again.

    .venv/bin/python scripts/move_arm_up_a_tier.py unet-focal_tversky-2d --out study_focal_tversky_100_epoch_runs.json
    # first: add the arm to study.epochs_by_arm (configs/study/cpu.yaml and full.yaml) or the network to
    # study.epochs_by_model; then: git add -u multirun && git add multirun/claims/OUT && git commit
    # (not `git add -A`: it would stage the runs still in flight)

The prefix selects ``PREFIX-seed*`` in the study folder and ``PREFIX-seed0*-lr*`` in its tuning folder (a tag
after the seed, ``-fp0.7``, is part of the name: ``--tag=-fp0.7``). Each complete run's epochs, convergence
record and test mean Dice go to ``--out`` (in the study folder, the form of ``study_*_epoch_runs.json``); an
unfinished run is removed without a record. A loss-variant check's arm (``scripts/loss_variant_runs.sh``: its grid
and seeds ``PREFIX-seedN-lrRATE`` in one folder, logs beside them) is retired with ``--study-dir`` that folder and
``--choice-key LOSS_VARIANT``, then trained again with ``EPOCHS=N``:

    .venv/bin/python scripts/move_arm_up_a_tier.py unet-dice-background-2d --study-dir multirun/claims_dice_background \
        --choice-key dice_background --out dice_background_100_epoch_runs.json

Written by hand: this is the study's own bookkeeping, the step the protocol in docs/survey-reproduction.md
(*The CPU study*) took by hand before.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from ctbench.atomic import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefix", help="the arm's run folder name before -seedN, e.g. unet-tversky-2d")
    parser.add_argument("--tag", default="", help="the arm's study.tag, e.g. --tag=-fp0.7 (default: none)")
    parser.add_argument("--out", required=True, help="file name of the curves' record, in the study folder")
    parser.add_argument("--study-dir", default="multirun/claims", type=Path)
    parser.add_argument("--choice-key", help="a loss-variant check's arm: its key in the folder's lr_choice.json "
                                              "(LOSS_VARIANT); its runs are PREFIX-seedN-lrRATE in --study-dir")
    args = parser.parse_args(argv)
    study_dir = args.study_dir
    tuning_dir = study_dir.with_name(f"{study_dir.name}_tuning")
    lr = r"-lr[0-9.e-]+" if args.choice_key else ""
    seed_name = re.compile(rf"{re.escape(args.prefix)}-seed\d+{re.escape(args.tag)}{lr}")
    grid_name = re.compile(rf"{re.escape(args.prefix)}-seed0{re.escape(args.tag)}-lr[0-9.e-]+")
    seeds = sorted(d for d in study_dir.iterdir() if d.is_dir() and seed_name.fullmatch(d.name))
    grid = sorted(d for d in tuning_dir.iterdir() if d.is_dir() and grid_name.fullmatch(d.name)) \
        if tuning_dir.is_dir() and not args.choice_key else []
    if not seeds and not grid:
        print(f"no run folder matches {args.prefix}-seed*{args.tag} in {study_dir} or {tuning_dir}", file=sys.stderr)
        return 2
    out = study_dir / args.out
    record = json.loads(out.read_text()) if out.is_file() else {}
    for run in [*seeds, *grid]:
        summary = run / "report" / "summary.json"
        if summary.is_file():
            data = json.loads(summary.read_text())
            record[run.name] = {"epochs": data.get("epochs"), "convergence": data.get("convergence"),
                                "test_mean_dice": data.get("mean_dice")}
    atomic_write_json(out, record)
    for run in [*seeds, *grid]:
        shutil.rmtree(run)
        (study_dir / "logs" / f"{run.name}.log").unlink(missing_ok=True)
        (study_dir / f"{run.name}.log").unlink(missing_ok=True)  # a loss-variant check's
        print(f"removed {run}")
    choices = study_dir / "lr_choice.json"
    key = args.choice_key or f"{args.prefix}-seed0{args.tag}"
    if choices.is_file():
        chosen = json.loads(choices.read_text())
        if chosen.pop(key, None) is not None:
            atomic_write_json(choices, chosen)
            print(f"removed {key} from {choices}")
    print(f"curves of {len(record)} run(s) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
