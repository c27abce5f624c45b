"""Predicted over true volume per class, per run: how far each loss arm floods or starves a class on the test cases.

From each run's ``report/per_case.csv`` (``pred_voxels``, ``truth_voxels``): the sum over the test cases of the
predicted voxels of a class over the sum of its true voxels, so 1 is the right volume, 1000 a class predicted over
a thousand times its volume, 0 a class never predicted. The Dice, Tversky and focal Tversky arms of the study leave
the background out of the loss (``include_background: false``) and have no cross-entropy term; this table shows
what that does to the lesion class (``docs/survey-reproduction.md``, *Sensitivity to the background class*).
``ctbench study report`` puts the same ratios per arm, over its seeds, in the doc (:mod:`ctbench.reports.volume_ratio`).

    python scripts/predicted_volume_ratio.py multirun/claims/unet-*-2d-seed? multirun/claims_dice_b*/unet-*
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctbench.reports.volume_ratio import ratio_text, volume_ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (with report/per_case.csv)")
    table = {run: ratios for run in parser.parse_args().runs if (ratios := volume_ratios(run)) is not None}
    if not table:
        raise SystemExit("no run folder with report/per_case.csv (and its voxel counts) given: pass the folders of finished runs")
    classes = sorted({name for ratios in table.values() for name in ratios})
    print("| run | " + " | ".join(classes) + " |")
    print("|---|" + "---:|" * len(classes))
    for run, ratios in table.items():
        print(f"| {run} | " + " | ".join(ratio_text(ratios.get(name, float("nan"))) for name in classes) + " |")


if __name__ == "__main__":
    main()
