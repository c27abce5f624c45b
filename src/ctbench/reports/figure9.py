"""C9, the survey's Figure 9 sentence as it is stated: per object size, which losses are monotone on every path.

Survey section 4.5, after Taghanaki et al. (2019), Figure 9 (loss against IoU for a large and a small
object): "as the IoU decreases (more false positives and false negatives) only focal loss and combo loss
are monotone increasing, compared to the wave curves on other loss functions". Read on the paths of
``ctbench loss-curves`` (:mod:`ctbench.reports.loss_curves`), whose object size is an axis of the design
(:data:`~ctbench.reports.loss_curves.OBJECTS`: a square of 16 %, 0.25 % or 0.01 % of the image, 150 paths
each), the sentence **holds in a size stratum** when focal and Combo are monotone on every path of it and
every other loss the survey reviews is not monotone on at least one. A loss is monotone on a path as
``loss_monotone.csv`` records it (:func:`~ctbench.reports.loss_curves.is_monotone`: the loss never rises
as IoU rises); paths with a single prediction (no IoU change to follow) are left out.

The paths are a designed grid, not a sample from a population of predictions: the counts are exact on
them, so the verdict compares counts, with no interval and no p-value (a bootstrap over the paths would
describe a population that does not exist). The survey's losses are those whose config's first line
cites the survey (``configs/loss/``; ``tests/losses/test_base.py`` keeps that true); losses published
after it (TopK, the boundary and Hausdorff losses, ...) get a row of the table but are outside the sentence.
"""

from __future__ import annotations

import csv
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ctbench.errors import CTBenchError, printable
from ctbench.reports.loss_curves import OBJECTS, loss_config_dir

#: The losses the sentence says are the only monotone ones.
ONLY_MONOTONE = ("focal", "combo")


@dataclass(frozen=True)
class MonotoneRow:
    """One loss of the table: per size stratum (object name), its monotone paths out of all paths."""

    loss: str
    in_sentence: bool  # a survey loss: the sentence speaks about it
    monotone: dict[str, int]
    paths: dict[str, int]

    def fraction(self, stratum: str) -> float:
        return self.monotone[stratum] / self.paths[stratum]


def survey_losses() -> set[str]:
    """The losses of ``configs/loss/`` whose first line cites the survey."""
    return {p.stem for p in loss_config_dir().glob("*.yaml")
            if "survey" in p.read_text(encoding="utf-8").partition("\n")[0]}


def figure9_table(curves_dir: Path, compared: Collection[str] | None = None) -> list[MonotoneRow]:
    """Per loss of ``curves_dir/loss_monotone.csv`` and per object size, the paths on which it is monotone.

    ``compared``: the losses the sentence is about (default :func:`survey_losses`); focal and Combo are
    always among them. Rows in the CSV's order; strata in the order the CSV first names them.
    """
    source = Path(curves_dir) / "loss_monotone.csv"
    if not source.is_file():
        raise CTBenchError(f"{source}: no such file; write it with `ctbench loss-curves {curves_dir}`")
    compared = set(survey_losses() if compared is None else compared) | set(ONLY_MONOTONE)
    monotone: dict[str, dict[str, int]] = {}
    paths: dict[str, dict[str, int]] = {}
    with source.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"loss", "object", "points", "monotone"} - set(reader.fieldnames or ())
        if missing:
            raise CTBenchError(f"{source}: no column {', '.join(sorted(missing))}; rewrite it with "
                               f"`ctbench loss-curves {curves_dir}`")
        for row in reader:
            if int(row["points"]) < 2:
                continue
            loss, stratum = row["loss"], row["object"]
            paths.setdefault(loss, {}).setdefault(stratum, 0)
            paths[loss][stratum] += 1
            monotone.setdefault(loss, {}).setdefault(stratum, 0)
            monotone[loss][stratum] += int(row["monotone"])
    absent = [k for k in ONLY_MONOTONE if k not in paths]
    if absent:
        raise CTBenchError(f"{source}: no path of {', '.join(absent)}; run `ctbench loss-curves` with every loss "
                           "of configs/loss/")
    strata = list(dict.fromkeys(s for per_loss in paths.values() for s in per_loss))
    uneven = [loss for loss, per_loss in paths.items() if set(per_loss) != set(strata)]
    if uneven:
        raise CTBenchError(f"{source}: {printable(uneven[0])} lacks paths of some object sizes; rewrite it with "
                           f"`ctbench loss-curves {curves_dir}`")
    return [MonotoneRow(loss, loss in compared, monotone[loss], paths[loss]) for loss in paths]


def stratum_verdicts(rows: list[MonotoneRow]) -> dict[str, str]:
    """Per size stratum: ``holds``, or ``does not hold:`` with focal/Combo's non-monotone paths and the other
    survey losses that are monotone on every path too."""
    by_loss = {r.loss: r for r in rows}
    verdicts = {}
    for stratum in rows[0].paths:
        misses = {k: by_loss[k].paths[stratum] - by_loss[k].monotone[stratum] for k in ONLY_MONOTONE}
        reasons = [f"{k} not monotone on {n} of {by_loss[k].paths[stratum]} paths" for k, n in misses.items() if n]
        also = [r.loss for r in rows if r.in_sentence and r.loss not in ONLY_MONOTONE
                and r.monotone[stratum] == r.paths[stratum]]
        if also:
            reasons.append(f"{', '.join(also)} also monotone on every path")
        verdicts[stratum] = "does not hold: " + "; ".join(reasons) if reasons else "holds"
    return verdicts


def figure9_markdown(rows: list[MonotoneRow]) -> str:
    """The table (rows: losses, columns: object sizes, cell: fraction of monotone paths and the counts), the
    verdict per size and how it was reached."""
    strata = list(rows[0].paths)

    def size(stratum: str) -> str:
        side = OBJECTS.get(stratum)
        return f"{stratum} ({side} x {side} px)" if side else stratum

    lines = ["| loss | " + " | ".join(size(s) for s in strata) + " |", "|---|" + "---:|" * len(strata)]
    for r in rows:
        name = f"**`{r.loss}`**" if r.loss in ONLY_MONOTONE else f"`{r.loss}`"
        if not r.in_sentence:
            name += " (after the survey)"
        lines.append(f"| {name} | " + " | ".join(f"{r.fraction(s):.2f} ({r.monotone[s]}/{r.paths[s]})"
                                                 for s in strata) + " |")
    verdicts = stratum_verdicts(rows)
    lines.append("| **verdict** | " + " | ".join(f"**{verdicts[s]}**" for s in strata) + " |")
    lines += ["", "Cell: the fraction (count) of the size's paths on which the loss never falls as IoU falls. "
              "The sentence holds for a size when focal and Combo are monotone on all its paths and every "
              "other survey loss is not monotone on some path. The paths are a designed grid, so the counts "
              "are exact: no interval, no p-value."]
    return "\n".join(lines) + "\n"
