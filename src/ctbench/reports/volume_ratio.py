"""Predicted over true volume per class: how far a run floods or starves a class on its test cases.

An overlap metric does not tell a flood from a miss: a class predicted over a thousand times its volume scores a
Dice near 0, as a class never predicted does. The volume ratio does: per class, the predicted voxels summed over
the test cases over the true voxels summed (``report/per_case.csv``: ``pred_voxels``, ``truth_voxels``), so 1 is
the right volume, 1000 a flood, 0 a class never predicted. Summed before dividing, so a case with few true voxels
does not dominate (the per-case ``rve`` column is that case's alone). :func:`volume_ratio_lines` is the study
report's table of it per arm, the range over the arm's seeds. Written by hand: a summary over a run's report
files, which no library has.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from ctbench.reports.render import md_table

#: A ratio outside this range (half or twice the true volume) is printed in bold.
PLAUSIBLE = (0.5, 2.0)


def volume_ratios(run: Path) -> dict[str, float] | None:
    """Per class, the predicted over the true voxels summed over the run's test cases (NaN without true voxels);
    None when the run has no ``report/per_case.csv`` or it lacks the voxel counts."""
    table = run / "report" / "per_case.csv"
    if not table.is_file():
        return None
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    with table.open() as f:
        reader = csv.DictReader(f)
        if not {"pred_voxels", "truth_voxels"} <= set(reader.fieldnames or ()):
            return None
        for row in reader:
            sums[row["class"]][0] += float(row["pred_voxels"])
            sums[row["class"]][1] += float(row["truth_voxels"])
    return {name: pred / truth if truth else math.nan for name, (pred, truth) in sorted(sums.items())}


def arm_name(run: Path, root: Path) -> str:
    """A run's arm: its folder below ``root`` with the seed replaced by N (``unet-dice-2d-seedN``); a run outside
    ``root`` keeps its parent folder's name in front (``claims_dice_batch/unet-dice-batch-2d-seedN-lr0.003``)."""
    name = re.sub(r"-seed\d+", "-seedN", run.name)
    return name if run.parent == root else f"{run.parent.name}/{name}"


def ratio_text(value: float) -> str:
    """Three significant digits; a ratio of 1000 or more as a whole number (1260, not 1.26e+03)."""
    return f"{value:.0f}" if value >= 1000 else f"{value:.3g}"


def _cell(values: Sequence[float]) -> str:
    """The range of an arm's ratios over its seeds, three significant digits, bold when outside :data:`PLAUSIBLE`."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    low, high = ratio_text(min(finite)), ratio_text(max(finite))
    text = low if low == high else f"{low}-{high}"
    return f"**{text}**" if min(finite) < PLAUSIBLE[0] or max(finite) > PLAUSIBLE[1] else text


def volume_ratio_lines(runs: Sequence[Path], root: Path) -> list[str]:
    """Markdown lines: per arm (runs grouped by :func:`arm_name`) and class, the range over its seeds of
    :func:`volume_ratios`; runs without voxel counts are left out."""
    arms: dict[str, list[dict[str, float]]] = defaultdict(list)
    for run in runs:
        if (ratios := volume_ratios(run)) is not None:
            arms[arm_name(run, root)].append(ratios)
    if not arms:
        return []
    classes = sorted({name for ratios in (r for rs in arms.values() for r in rs) for name in ratios})
    rows = [[f"`{arm}`", str(len(ratios)), *(_cell([r.get(name, math.nan) for r in ratios]) for name in classes)]
            for arm, ratios in sorted(arms.items())]
    return ["", "**Predicted over true volume** (not a verdict; per run: `python scripts/predicted_volume_ratio.py "
            "RUN...`). Per arm of the study and of its loss-variant checks, and per class, the predicted voxels summed over the test cases over the true voxels "
            "summed, the range over the arm's runs: 1 is the right volume, 0 a class never predicted; outside "
            f"[{PLAUSIBLE[0]:g}, {PLAUSIBLE[1]:g}] in bold. A class flooded over the body scores a Dice near 0 as a "
            "missed one does; this table tells the two apart.", "",
            *md_table(["arm", "runs", *classes], rows)]
