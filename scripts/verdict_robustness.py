#!/usr/bin/env python
"""The study's decisive verdicts under every reading the project ran: which hold whichever way the study could
have been run, and which follow one choice. A summary of sensitivity analyses and replications, never the
verdicts (those are the declared ones, ``ctbench study report``).

Each column judges the claims again with the study's verdict rule, as one reading the doc gives with its command
(in *Results*' sensitivity tables, or a ``run.sh`` beside its runs and the bullets under *Reading the verdicts so
far*), and only on the claims that reading's declaration reads; what each column is, the table's legend says
(:data:`READINGS`). Rows: each claim decisive (reproduced, contradicted, no practical difference above the floor)
in at least one reading.

    PYTHONPATH=src .venv/bin/python scripts/verdict_robustness.py                 # print the table
    PYTHONPATH=src .venv/bin/python scripts/verdict_robustness.py --write README.md docs/survey-reproduction.md
    PYTHONPATH=src .venv/bin/python scripts/verdict_robustness.py --check README.md docs/survey-reproduction.md

``--write`` replaces the lines between ``<!-- robustness:begin -->`` and ``<!-- robustness:end -->`` of each file;
``--check`` exits 1 when a file's block is not what ``--write`` would put there (the slow tier runs it on the
committed study, so a table left stale by a new run or reading fails there).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from readme_study_table import (  # scripts/ is on the path of a script run from it
    block_is_current,
    claim_order,
    fill_block,
)
from retrained_sensitivity import tested_as_trained

from ctbench.reports.claims import Claim, Verdict, at_floor, evaluate_claims, load_claims, sides
from ctbench.reports.collect import Run, collect, find_run_dirs
from ctbench.study import (
    CLAIMS_DIR,
    EPOCHS_BY_DESIGN,
    LOSS_VARIANTS,
    chosen_variant_runs,
    claim_key,
    epoch_check_dir,
    equal_epoch_runs,
    replaced_arm_runs,
)

BEGIN, END = "<!-- robustness:begin -->", "<!-- robustness:end -->"
#: the replication's family, fixed in multirun/claims_fresh_seeds/run.sh before any verdict on its runs
FRESH_FAMILY = ("C1a", "C1b", "C1c", "C7b", "C7d", "C7f", "C8", "C11a", "C14b", "C14c", "C18a", "C18b", "C24b")
C1 = ("C1a", "C1b", "C1c")
#: the claims that run_replay_declared_deeplab.sh and run_replay_declared_pspnet.sh (multirun/claims_test_time) read
REPLAYED = ("C11a", "C14b", "C14c")
SHORT = {"reproduced": "R", "contradicted": "C", "no practical difference": "N", "inconclusive": "I",
         "not evaluable": "NE"}


@dataclass(frozen=True)
class Reading:
    """A column: its head, what it reads (the legend), the verdicts it gives (claim id -> verdict) for the claims
    whose runs it changes, and the claims its declaration reads (ids' first words; None: every claim it judges)."""

    head: str
    what: str
    judge: Callable[[Sequence[Claim], list[Run], Path], dict[str, Verdict]]
    reads: tuple[str, ...] | None = None

    def verdicts(self, claims: Sequence[Claim], runs: list[Run], study: Path) -> dict[str, Verdict]:
        return {i: v for i, v in self.judge(claims, runs, study).items()
                if self.reads is None or i.split("-")[0] in self.reads}


def complete_runs(*folders: Path, as_trained: bool = False) -> list[Run]:
    """The complete runs below ``folders`` (none for a folder that is missing), the study's reports left out;
    with ``as_trained`` an evaluation of a checkpoint on the test split without post-processing reads as a training
    run (``scripts/retrained_sensitivity.py --as-trained``)."""
    runs = [r for f in folders if f.is_dir() and find_run_dirs(f)
            for r in collect([f])[0] if "report" not in r.path.relative_to(f).parts]
    return [r.with_override("task_name", "train") if as_trained and tested_as_trained(r) else r for r in runs]


def judged(claims: Sequence[Claim], runs: list[Run], runs_of: dict[str, list[Run]]) -> dict[str, Verdict]:
    """The verdicts of the claims ``runs_of`` names, judged on those runs in the declared family."""
    return {v.claim.id: v for v in evaluate_claims(claims, runs, runs_of=runs_of) if v.claim.id in runs_of}


def in_place(claims: Sequence[Claim], runs: list[Run], again: list[Run]) -> dict[str, list[Run]]:
    """Per claim with a run of ``again`` named as one of its sides' runs: the runs with those taken in place."""
    by_name = {r.path.name: r for r in again}
    swapped = [by_name.get(r.path.name, r) for r in runs]
    return {c.id: swapped for c in claims if any(r.path.name in by_name for side in sides(c, runs) for r in side)}


def declared(claims, runs, study):
    return {v.claim.id: v for v in evaluate_claims(claims, runs)}


def family_per_statement(claims, runs, study):
    return {v.claim.id: v for v in evaluate_claims(claims, runs, family_of=lambda c: claim_key(c.id))}


def equal_epochs(claims, runs, study):
    checks = complete_runs(epoch_check_dir(study))
    again = {i: r for i, (_, _, r) in equal_epoch_runs(claims, runs, checks).items()
             if r is not None and i.split("-")[0] not in EPOCHS_BY_DESIGN}
    return judged(claims, runs, again)


def loss_variant(name: str) -> Callable[[Sequence[Claim], list[Run], Path], dict[str, Verdict]]:
    variant, = (v for v in LOSS_VARIANTS if v.name == name)

    def judge(claims, runs, study):
        _, picked = chosen_variant_runs(complete_runs(variant.dir(study)), variant.dir(study), variant)
        by_loss: dict[str, list[Run]] = {}
        for _, r in picked:
            by_loss.setdefault(r.attribute("loss"), []).append(r)
        return judged(claims, runs, replaced_arm_runs(claims, runs, variant, by_loss))
    return judge


def retrained(folder: str, as_trained: bool = False) -> Callable[[Sequence[Claim], list[Run], Path], dict[str, Verdict]]:
    """The runs of ``folder`` (beside the study's) named as the study's, taken in their places
    (``scripts/retrained_sensitivity.py FOLDER [--as-trained]``, its first table)."""
    def judge(claims, runs, study):
        again = complete_runs(study.parent / folder, as_trained=as_trained)
        return judged(claims, runs, in_place(claims, runs, again))
    return judge


def replication(groups: Sequence[tuple[Sequence[str], bool]]):
    """Fresh seeds judged alone in their family of 13, each group of folders (below the study's sibling folders)
    judged as it was declared, with or without ``--as-trained``; a claim takes its verdict from the group with new
    runs on both of its sides."""
    def judge(claims, runs, study):
        names = {r.path.name for r in runs}
        family = [c for c in claims if c.id.split("-")[0] in FRESH_FAMILY]
        out: dict[str, Verdict] = {}
        for folders, as_trained in groups:
            added = [r for r in complete_runs(*(study.parent / f for f in folders), as_trained=as_trained)
                     if r.path.name not in names]
            out |= {v.claim.id: v for v in evaluate_claims(family, added) if all(sides(v.claim, added))}
        return out
    return judge


FRESH = "seeds 3-5 (C1: 3-9) judged alone in their family of 13, fixed before any verdict on them"
READINGS = (
    Reading("declared", "the study's runs (seeds 0-2, `best.ckpt`), every claim file one family: the verdicts",
            declared),
    Reading("per statement", "the same runs, one family per survey statement (C1, C2, ...)", family_per_statement),
    Reading("equal epochs", "the shorter arm trained as long as the longer (`multirun/claims_epoch_check`)",
            equal_epochs),
    Reading("batch Dice", "the region-loss arms trained with one Dice over the batch (`multirun/claims_dice_batch`)",
            loss_variant("batch")),
    Reading("background in", "Dice, Tversky and focal Tversky trained with the background in the loss "
            "(`multirun/claims_dice_background`)", loss_variant("background")),
    Reading("today's code", "the runs of the code before ba3ec25 trained again with today's "
            "(`multirun/claims_same_code`; the FCNs at 150 epochs)", retrained("claims_same_code"),
            (*C1, "C2b", "C5a", "C5b", "C12", "C13", "C21a", "C21c", "C21d")),
    Reading("FCN 250", "C1's FCNs, seeds 0-2, trained again at 250 epochs, the tier the study's rule moves them to "
            "(`multirun/claims_same_code_fcn_250`)", retrained("claims_same_code_fcn_250"), C1),
    Reading("FCN 250 last", "those runs tested from `last.ckpt` (`multirun/claims_test_time/final`)",
            retrained("claims_test_time/final"), C1),
    Reading("FCN 250 lcc", "those runs tested from `best.ckpt` with the liver's and spleen's largest component kept "
            "(`multirun/claims_test_time/lcc_organs`)", retrained("claims_test_time/lcc_organs"), C1),
    Reading("replay", "the study's DeepLab v2, v3 and v3+ runs and its 2D and 3D PSPNet runs replayed at their own "
            "commits, 14 of 15 bit for bit (DeepLab v3 seed 0, stopped and resumed on 2 Dec, trained uninterrupted: "
            "a new draw), tested by today's code from `best.ckpt` (`multirun/claims_test_time/best_declared`)",
            retrained("claims_test_time/best_declared", as_trained=True), REPLAYED),
    Reading("replay last", "the same runs tested from `last.ckpt` (`multirun/claims_test_time/final_declared`)",
            retrained("claims_test_time/final_declared", as_trained=True), REPLAYED),
    Reading("fresh", f"{FRESH} (`multirun/claims_fresh_seeds`, `multirun/claims_fresh_seeds_c1`)",
            replication([(("claims_fresh_seeds", "claims_fresh_seeds_c1"), False)])),
    Reading("fresh last", "the same tested from `last.ckpt` (`multirun/claims_test_time/final*`; the runs whose "
            "weights were gone replayed bit for bit first)", replication([
                (("claims_test_time/final", "claims_test_time/final_seeds_6_9"), False),
                (("claims_test_time/final_replay", "claims_test_time/final_replay_unet"), True)])),
    Reading("fresh lcc", "C1's seeds 3-5 tested with the liver's and spleen's largest component kept, in the same "
            "family (`multirun/claims_test_time/lcc_organs`)", replication([(("claims_test_time/lcc_organs",), False)])),
)


def decisive(v: Verdict) -> bool:
    return v.verdict in ("reproduced", "contradicted") or (v.verdict == "no practical difference" and not at_floor(v))


def shown(v: Verdict) -> str:
    """A cell: the verdict's letter (bold where decisive), ``0`` after N at the floor, and the mean difference."""
    letter = SHORT[v.verdict] + ("0" if at_floor(v) else "")
    estimate = f" {v.test.estimate:+#.3g}" if v.test is not None and v.verdict != "not evaluable" else ""
    return (f"**{letter}**" if decisive(v) else letter) + estimate


def table(columns: dict[str, dict[str, Verdict]], readings: Sequence[Reading] = READINGS) -> list[str]:
    """Markdown lines: one row per claim decisive in a reading, and how many readings agree with the declared one."""
    ids = sorted({i for col in columns.values() for i, v in col.items() if decisive(v)}, key=claim_order)
    first = next(iter(columns.values()))
    lines = ["| claim | " + " | ".join(columns) + " | as declared |", "|---|" + "---|" * (len(columns) + 1)]
    for i in ids:
        cells = [shown(col[i]) if i in col else "" for col in columns.values()]
        others = [col[i] for col in list(columns.values())[1:] if i in col]
        same = sum(v.verdict == first[i].verdict and at_floor(v) == at_floor(first[i]) for v in others)
        lines.append(f"| {i} | " + " | ".join(cells) + f" | {same} of {len(others)} |")
    floor_only = sorted({i for col in columns.values() for i, v in col.items() if at_floor(v)} - set(ids),
                        key=claim_order)
    legend = ("Cells: **R** reproduced, **C** contradicted, **N** no practical difference (bold: decisive), N0 no "
              "practical difference at the floor (both sides within the margin of 0), I inconclusive, NE not "
              "evaluable; the number is the mean difference (candidate minus baseline). An empty cell: the reading "
              "trains or tests no run of the claim's sides, or its declaration does not read the claim. *As "
              "declared*: the other readings that give the declared verdict, of those that judge the claim.")
    columns_legend = "Columns: " + "; ".join(f"*{r.head}*: {r.what}" for r in readings if r.head in columns) + "."
    return lines + ["", legend + (f" Claims at the floor in some reading and decisive in none: "
                                  f"{', '.join(i.split('-')[0] for i in floor_only)}." if floor_only else ""),
                    "", columns_legend]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, default=Path("multirun/claims"), help="the study's folder")
    parser.add_argument("--claims-dir", type=Path, default=CLAIMS_DIR, help="the claim files")
    parser.add_argument("--write", type=Path, nargs="+", metavar="FILE",
                        help="put the table between the robustness markers of these files")
    parser.add_argument("--check", type=Path, nargs="+", metavar="FILE",
                        help="exit 1 when the table between these files' markers is not the one --write would put")
    args = parser.parse_args()
    runs = complete_runs(args.study)
    if not runs:
        raise SystemExit(f"{args.study}: no complete run there; run `ctbench study run` first")
    claims = load_claims(args.claims_dir)
    columns = {reading.head: reading.verdicts(claims, runs, args.study) for reading in READINGS}
    lines = table(columns)
    print("\n".join(lines))
    block = ["<!-- generated by scripts/verdict_robustness.py -->", *lines]
    for path in args.write or ():
        fill_block(path, BEGIN, END, block)
    stale = [str(path) for path in args.check or () if not block_is_current(path, BEGIN, END, block)]
    if stale:
        raise SystemExit(f"{', '.join(stale)}: the robustness table is stale; refresh it with "
                         f"scripts/verdict_robustness.py --write {' '.join(stale)}")


if __name__ == "__main__":
    main()
