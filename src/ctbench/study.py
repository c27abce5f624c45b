"""``ctbench study``: the survey-reproduction study, every claim experiment, one claims report, a figure per claim.

    ctbench study run                         # the CPU study (C1-C25), 2 jobs side by side, then the report
    ctbench study run --only C7 C8            # some claims' runs (shared runs are trained once)
    ctbench study run study=full --jobs 8     # the full-size presets (GPU node)
    ctbench study run --srun                  # each job through `srun` (inside a SLURM allocation)
    ctbench study run --deadline 2h30m        # start no job that would not finish in time (or --deadline 18:45)
    ctbench study report --doc docs/survey-reproduction.md   # no job: verdicts of the complete runs

Each claim is an experiment in ``configs/experiment/claims/`` (its runs are the product of its
``hydra.sweeper.params``, exactly what ``ctbench train -m experiment=claims/NAME`` runs) and one or more
claim files in ``configs/claims/``. ``study run``

1. runs every job of the selected claims as ``ctbench train experiment=claims/NAME KEY=VALUE ...`` in
   ``multirun/claims/MODEL-LOSS-DIMSd-seedS[TAG]`` below the working folder (``multirun/claims_full`` with
   ``study=full``), ``--jobs`` at a time, one thread each; a job two claims share runs once, a complete job
   is skipped and an interrupted one resumes, before the jobs ahead of it (rerun the same command after a stop);
   a train job is not run (``held``) when every claim file whose side it belongs to already reads not evaluable
   because a side's loss arm did not converge at the preset's top epoch tier (:func:`moot`);
   each loss arm (:data:`LR_EXPERIMENTS`: the U-Nets of C7, C8, C16-C19, C21 that differ by loss) first trains
   seed 0 at 3 learning rates (:data:`LR_FACTORS` x the configured one) in ``multirun/claims_tuning/NAME-lrR``;
   the rate with the best validation ``val/mean_dice`` is chosen and recorded in ``STUDY_DIR/lr_choice.json``,
   its run becomes the arm's seed-0 run (linked, not trained again) and seeds 1 and 2 train at it (the override
   is decided when their jobs start; a resumed study reads the recorded choice, and a tuning run whose choice is
   recorded is not run again: a fresh clone has the choices, not the tuning runs' weights). The Dice-CE
   U-Net shared with the architecture claims keeps the configured rate;
2. tests each DeepLab checkpoint of C3 (v1) and C15 (v3+) on its validation cases with each dense CRF setting of
   :data:`CRF_GRID` (``ctbench eval ... postprocess=crf split=val crf.*=...`` in ``multirun/claims_tuning``),
   records the best mean Dice in ``STUDY_DIR/crf_choice.json``, then tests it once without
   (``NAME-eval-null``) and once with the CRF at the chosen weights (``NAME-eval-crf``);
3. computes C9 with ``ctbench loss-curves`` and judges the survey's sentence per object size
   (:mod:`ctbench.reports.figure9`: exact counts on the designed paths, no interval);
4. then does what ``study report`` does: the verdict of every claim file (:mod:`ctbench.reports.claims`; the
   family is every claim file, ``--only`` selects what is shown), ``claims.md``/``claims.csv``, one paired
   figure per claim and the study section of ``--doc`` (default ``STUDY_DIR/report/survey-reproduction.md``).

With ``--deadline`` (a duration, ``90m``, ``2h30m``, or a clock time, ``18:45``) the study starts no job it expects to
end after the deadline (:func:`expected_seconds`: the measured seconds per epoch of its network's complete jobs,
or of the slowest network measured, less the time it already spent), so an allocation or a session ends with finished runs, not half-trained ones;
the jobs it did not start are listed and a rerun goes on.

Job wall times are in ``STUDY_DIR/study_jobs.json``; a claim's time is the sum of its jobs' wall times (the
tuning runs included). A job resumed after a stopped or failed study counts every segment: each is recorded
when it starts, and the next start closes a segment the study was killed in at its log's last write (its CPU
time then unknown). A run retrained in a fresh folder (moved up an epoch tier) leaves its record's time in
``study_jobs_retired.json``; each ``study run`` records its own wall-time span in ``study_runs.json``. The
report adds a table of the verdicts the family decides (the rule again with the claims split by kind and by
survey statement; :data:`OTHER_FAMILIES`, never the verdicts). A job whose run folder another process holds
(:mod:`ctbench.folder_lock`) is left to it (``busy``). The tuning runs lie beside ``STUDY_DIR``, so no claim
selector reads them.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctbench import folder_lock
from ctbench.atomic import atomic_write_json, atomic_write_text
from ctbench.config import CONFIG_DIR
from ctbench.errors import CTBenchError

EXPERIMENTS = CONFIG_DIR / "experiment" / "claims"
CLAIMS_DIR = CONFIG_DIR / "claims"
PRESETS = ("cpu", "full")
#: the markers of the study section :func:`write_doc` rewrites in a doc
DOC_BEGIN, DOC_END = "<!-- study:begin -->", "<!-- study:end -->"

#: Claim -> (what the survey says, its section, the experiments it runs in order).
CLAIMS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "C1": ("FCN skip connections refine the output: FCN-32s < FCN-16s < FCN-8s", "3.1", ("c1_fcn_skips",)),
    "C2": ("U-Net's concatenated skips and SegNet's pooling indices beat FCN's added skips / learned "
           "upsampling", "3.2.1-3.2.2", ("c2_unet_segnet", "c2_skip_ablation")),
    "C3": ("DeepLab v1's dense CRF refines the boundaries of the same network", "3.2.4", ("c3_crf",)),
    "C4": ("A cascaded FCN (liver, then lesions in the liver) beats one network on lesions", "3.1",
           ("c4_cascade",)),
    "C5": ("Attention gates help small structures (kidney, lesion)", "3.2", ("c5_attention",)),
    "C6": ("3D (volumetric input) beats 2D at the same number of epochs", "3.2.2", ("c6_3d_vs_2d", "c6_2d_equal_epochs")),
    "C7": ("With a small foreground, focal or Combo loss is more likely to perform well; Tversky, "
           "focal Tversky, ExpLog and generalized Dice target small objects", "4.2-4.5", ("c7_small_losses",)),
    "C8": ("Combo loss is more stable", "4.5", ("c8_combo_stability",)),
    "C9": ("As IoU falls only focal and Combo loss rise monotonically (Figure 9)", "4.5", ()),
    "C10": ("Transfer learning from a pre-trained model helps", "5", ("c10_source", "c10_transfer")),
    "C11": ("A 3D FCN with pyramid pooling outperformed 2D PSPNet and 3D U-Net", "3.2.5", ("c11_pspnet",)),
    "C12": ("DRINet outperformed FCNs (2D slices)", "3.2.6", ("c12_drinet",)),
    "C13": ("FC-DenseNet strengthens feature propagation (vs U-Net, matched parameters)", "3.2.3",
            ("c13_fcdensenet", "unet_dice_ce")),
    "C14": ("ASPP (DeepLab v2), its v3 refinements and v3+'s decoder each improve on the version before", "3.2.4",
            ("c3_crf", "c14_deeplab", "c15_crf_v3p")),
    "C15": ("DeepLab v3+ gives up the CRF: the CRF adds nothing to v3+ (equivalence)", "3.2.4", ("c15_crf_v3p",)),
    "C16": ("Weighted CE: beta > 1 decreases false negatives, beta < 1 false positives", "4.1.2",
            ("c16_wce_beta", "unet_ce_dice")),
    "C17": ("Tversky's weights balance false positives against false negatives", "4.4",
            ("c17_tversky", "c7_small_losses")),
    "C18": ("Dice loss works well for the imbalanced class problem (vs CE)", "4.3", ("unet_ce_dice",)),
    "C19": ("ExpLog and generalized Dice handle object-size imbalance (small lesions)", "4.5", ("c19_size_losses",)),
    "C20": ("Pre-processing improves segmentation (HU window ablation)", "5", ("c20_hu_window", "unet_dice_ce")),
    "C21": ("Calibration against Ma et al. 2021 on real CT (not a survey statement)", "-",
            ("unet_dice_ce", "c16_wce_beta", "c19_size_losses", "unet_ce_dice", "c21_compound_losses")),
    "C25": ("Calibration against Isensee et al. 2024 (nnU-Net Revisited) on real CT: a CNN U-Net matches or "
            "beats Swin UNETR at equal budget (not a survey statement)", "-", ("c25_cnn_vs_swinunetr",)),
    "C23": ("The conservative loss generalises better: trained on non-contrast, tested on portal-venous CT", "4.5",
            ("c23_conservative_phase",)),
    "C24": ("CNNs often miss small objects: small vs large lesion recall in the same runs, per architecture", "5",
            ("c24_small_objects",)),
    "C22": ("U-Net's distance-weighted loss separates touching objects (fewer merged lesion instances than CE; "
            "the distance term ablated)", "4.1.2", ("c22_touching", "c22_touching_ce")),
}
#: Experiments whose best checkpoints ``study run`` tests twice, without and with the dense CRF, for the claims
#: about the CRF (C14 trains its DeepLab v1 and v3+ runs through them too, and needs no CRF evaluation).
CRF_EXPERIMENTS = ("c3_crf", "c15_crf_v3p")
CRF_CLAIMS = ("C3", "C15")
#: The dense CRF settings tried on the validation cases of each of their runs, the rest at the defaults of
#: ``crf.*`` (configs/eval.yaml): DeepLab v1's protocol (Chen et al. 2014, sec. 4.1: the smoothness term fixed,
#: the appearance kernel's weight and width searched on held-out images), here the default weight and its
#: double, and widths of 10 and 30 mm (5 and 15 pixels at 2 mm; the default, 8 voxels, is 16 mm in plane).
CRF_GRID: dict[str, dict[str, float]] = {
    f"wb{w:g}-sa{s:g}mm": {"bilateral_weight": w, "bilateral_sigma": s} for w in (3.0, 6.0) for s in (10.0, 30.0)}
#: Loss-arm experiments (the 2D U-Nets that differ by ``loss`` or its weights): each arm picks its learning rate
#: on the validation cases. The Dice-CE U-Net (the architecture claims' reference arm) keeps the configured rate.
LR_EXPERIMENTS = ("c7_small_losses", "c8_combo_stability", "c16_wce_beta", "c17_tversky", "unet_ce_dice",
                  "c19_size_losses", "c21_compound_losses", "c22_touching", "c22_touching_ce",
                  "c23_conservative_phase")
LR_KEY = "optim.optimizer.lr"
#: The learning-rate grid of a loss arm: the configured rate (configs/optim/adamw.yaml, 3e-3) times 1/3, 1 and 3,
#: the half-decade steps of a log-scale search.
LR_FACTORS = (1 / 3, 1.0, 3.0)
#: A choice is made once and recorded; a resumed study reads it back (one lock for the study's threads).
_RECORDS = threading.Lock()


def claim_key(claim_id: str) -> str:
    """The study claim (``C7``) of a claim file's id (``C7a-focal-vs-dice-lesion``)."""
    return claim_id.split("-")[0].rstrip("abcdefghij")


def claim_kind(claim: Any) -> str:
    """``survey`` (a statement of the survey), ``exploratory`` (labelled so in its ``claim:``: the survey does not
    say it) or ``calibration`` (its ``source`` is a published real-data result, not the survey)."""
    if not claim.source.lower().startswith("survey"):
        return "calibration"
    return "exploratory" if "exploratory" in claim.claim.lower() else "survey"


#: Other ways to split the claims into families, for the report's sensitivity table (never the verdicts): each
#: a description and a claim -> family key function.
OTHER_FAMILIES: tuple[tuple[str, Callable[[Any], str]], ...] = (
    ("the survey's statements, the exploratory and the calibration claims, three families", claim_kind),
    ("one family per survey statement (C1, C2, ...), the loosest split that still corrects within a statement",
     lambda claim: claim_key(claim.id)),
)


def family_sensitivity(claims: Sequence[Any], runs: Sequence[Any], verdicts: Sequence[Any],
                       shown: Sequence[str]) -> list[str]:
    """Markdown lines: the verdict rule again with the claims split by each of :data:`OTHER_FAMILIES`, and the
    ``shown`` claims whose verdict would change (the declared family, every claim file, gives the verdicts)."""
    from ctbench.reports.claims import evaluate_claims, verdict_label

    declared = {v.claim.id: v for v in verdicts}
    lines = ["", "**Sensitivity to the family** (not the verdicts: those are judged in the declared family, every "
             f"claim file, m = {len(claims)}). The same rule, with the claims split into smaller families, each "
             "with its own simultaneous level and Holm correction (`ctbench study report` computes it):", "",
             "| families | sizes | verdicts that would change |", "|---|---|---|"]
    for description, family_of in OTHER_FAMILIES:
        sizes = Counter(family_of(c) for c in claims)
        changed = []
        for v in evaluate_claims(claims, runs, family_of=family_of):
            was = declared[v.claim.id]
            if v.claim.id in shown and v.verdict != was.verdict and v.test is not None:
                t = v.test
                changed.append(f"{v.claim.id}: {verdict_label(was)} -> **{verdict_label(v)}** ({_num(t.estimate)} [{_num(t.low)}, "
                               f"{_num(t.high)}] at m = {v.family_size}, Holm p {v.p_holm:.2g})")
        shown_sizes = ", ".join(f"{k} {n}" for k, n in sizes.items()) if len(sizes) <= 4 else \
            f"{len(sizes)} families of {min(sizes.values())}-{max(sizes.values())}"
        lines.append(f"| {description} | {shown_sizes} | {'; '.join(changed) or 'none'} |")
    return lines


def epoch_check_dir(study_dir: Path) -> Path:
    """The folder of the runs that train a claim's shorter arm as long as its longer one
    (``multirun/claims_epoch_check``, filled by its ``run.sh``): beside the study's runs, so no verdict sees them."""
    return study_dir.with_name(f"{study_dir.name}_epoch_check")


EPOCHS_KEY = "trainer.max_epochs"
#: claims whose arms train different epochs by their design, keyed by the claim id's first word: no run of the
#: shorter arm at the longer one's epochs would test the claim as stated
EPOCHS_BY_DESIGN = {"C10a": "unequal by design: the fine-tuned arm's epochs follow its source's, the same "
                            "optimiser steps in all as the scratch arm's"}


def equal_epoch_runs(claims: Sequence[Any], runs: Sequence[Any], checks: Sequence[Any]
                     ) -> dict[str, tuple[str, str, list[Any] | None]]:
    """Per claim whose two sides trained different epochs (each arm at its own convergence tier): the candidate's
    and the baseline's epochs, and the runs to judge it on with the shorter side replaced by ``checks`` runs
    that match its selectors at the longer side's epochs (None when ``checks`` has none)."""
    from ctbench.reports.claims import matches, sides

    out: dict[str, tuple[str, str, list[Any] | None]] = {}
    for claim in claims:
        if claim.columns is not None:  # compare: strata, one side of runs
            continue
        candidate, baseline = sides(claim, runs)
        tiers = [{r.attribute(EPOCHS_KEY) for r in side} for side in (candidate, baseline)]
        if not candidate or not baseline or any(len(t) != 1 or None in t for t in tiers) or tiers[0] == tiers[1]:
            continue
        (c_epochs,), (b_epochs,) = tiers
        longer = max(c_epochs, b_epochs, key=int)
        shorter, selectors = (baseline, claim.baseline) if longer == c_epochs else (candidate, claim.candidate)
        again = [r for r in checks if matches(r, selectors) and r.attribute(EPOCHS_KEY) == longer]
        out[claim.id] = (c_epochs, b_epochs,
                         [r for r in runs if not any(r is s for s in shorter)] + again if again else None)
    return out


def _sensitivity_cell(v: Any) -> str:
    """A sensitivity table's cell: mean difference [simultaneous interval], Holm p; converged; verdict."""
    from ctbench.reports.claims import verdict_label

    t = v.test
    measured = f"{_num(t.estimate)} [{_num(t.low)}, {_num(t.high)}], Holm p {v.p_holm:.2g}; " if t else ""
    return (f"{measured}{v.converged_candidate}/{v.converged_baseline}; **{verdict_label(v)}**"
            + (f" ({v.note})" if v.verdict == "not evaluable" else ""))


def epoch_sensitivity(claims: Sequence[Any], runs: Sequence[Any], verdicts: Sequence[Any], shown: Sequence[str],
                      checks: Sequence[Any], checks_dir: Path) -> list[str]:
    """Markdown lines: the ``shown`` claims whose arms trained different epochs, and their verdicts with the
    shorter arm trained as long as the longer (:func:`equal_epoch_runs`), every such claim at once, in the declared
    family (a sensitivity analysis: the verdicts are the declared ones)."""
    from ctbench.reports.claims import evaluate_claims

    unequal = equal_epoch_runs(claims, runs, checks)
    mine = [i for i in unequal if i in shown]
    if not mine:
        return []
    again = {i: r for i, (_, _, r) in unequal.items() if r is not None and i.split("-")[0] not in EPOCHS_BY_DESIGN}
    declared = {v.claim.id: v for v in verdicts}
    redone = {v.claim.id: v for v in evaluate_claims(claims, runs, runs_of=again)}
    lines = ["", f"**Sensitivity to the epochs** (not the verdicts). Each arm trains to its own convergence tier "
             f"(`study.epochs_by_arm`, `study.epochs_by_model`), so {len(unequal)} claims set arms of different "
             f"epochs against each other. Here the shorter arm trains as long as the longer one, a loss arm at the rate "
             f"its own grid chose, a network at the preset's (`{checks_dir}/run.sh`; {len(checks)} runs), and every such claim is judged again at "
             "once, in the declared family (m = "
             f"{len(claims)}). Cells: mean difference [simultaneous interval], Holm p; converged (candidate/baseline); "
             "verdict.", "",
             "| claim | epochs candidate / baseline | declared | shorter arm at the longer's epochs | seeds |",
             "|---|---|---|---|---|"]
    for claim_id in mine:
        c_epochs, b_epochs, again_runs = unequal[claim_id]
        was, now = declared[claim_id], redone[claim_id]
        by_design = EPOCHS_BY_DESIGN.get(claim_id.split("-")[0])
        lines.append(f"| {claim_id} | {c_epochs} / {b_epochs} | {_sensitivity_cell(was)} | "
                     f"{by_design or (_sensitivity_cell(now) if again_runs is not None else 'not trained')} | "
                     f"{f'{now.candidate_runs}/{now.baseline_runs}' if again_runs is not None and not by_design else ''} |")
    return lines


@dataclass(frozen=True)
class LossVariant:
    """A setting of the study's loss arms changed for a sensitivity check: the arms of ``losses`` trained again with
    the Hydra override ``override`` in the study folder's sibling ``<study folder>_<folder>`` by that folder's
    ``run.sh`` (``scripts/loss_variant_runs.sh``), each arm's learning rate chosen on the study's grid and recorded
    under the key ``<arm>_<name>`` of the folder's ``lr_choice.json`` (an arm: a loss, or an experiment's
    ``study.arm``: :func:`study_arm`); ``study report`` judges every claim with such a loss on a side again with them
    in its place (:func:`variant_sensitivity`)."""

    name: str
    folder: str
    override: str
    losses: tuple[str, ...]
    title: str
    why: str
    declared: str
    replaced: str

    def dir(self, study_dir: Path) -> Path:
        """The check's folder, beside the study's runs so that no verdict sees them."""
        return study_dir.with_name(f"{study_dir.name}_{self.folder}")

    def key(self, arm: str) -> str:
        """The key of ``arm``'s learning-rate choice in the check's ``lr_choice.json``."""
        return f"{arm}_{self.name}"


#: the study's region losses (Dice, generalized Dice, Tversky, focal Tversky) compute one index per 2D patch and
#: class with no cross-entropy term, and all but generalized Dice leave the background class out of the loss
LOSS_VARIANTS = (
    LossVariant(
        "batch", "dice_batch", "loss.batch=true", ("dice", "generalized_dice", "tversky", "focal_tversky"),
        "Sensitivity to the Dice formulation",
        "The study's region losses (Dice, generalized Dice, Tversky, focal Tversky: `configs/loss/*.yaml`, "
        "`batch: false`, no cross-entropy term) compute one index per 2D patch and class; on a patch without a "
        "class, that class's term is about 1 whatever is predicted there, so its false positives get almost no "
        "gradient (`python scripts/dice_empty_patch_gradient.py`). Here each region-loss arm trains again with one "
        "index per class over the batch (`loss.batch=true`, nnU-Net's batch Dice)",
        "declared (per patch)", "over the batch in their place"),
    LossVariant(
        "background", "dice_background", "loss.include_background=true", ("dice", "tversky", "focal_tversky"),
        "Sensitivity to the background class",
        "Dice, Tversky and focal Tversky leave the background class out of the loss (`configs/loss/*.yaml`, "
        "`include_background: false`, no cross-entropy term), so nothing but the softmax pushes a foreground "
        "class down where it is absent; a Dice term's gradient on a false positive scales with the class's true "
        "positives, which a small lesion hardly has. Here each such arm trains again with the background as one "
        "more class of the loss (`loss.include_background=true`, MONAI's default)",
        "declared (background out)", "background in, in their place"),
)


def study_arm(run: Any) -> str:
    """A run's arm of the study: its experiment's ``study.arm`` (``tversky_fp``: C17's Tversky weighting false
    positives), else its loss; a loss-variant check records its choice of rate per arm (:meth:`LossVariant.key`)."""
    arm = run.attribute("study.arm")
    return arm if arm not in (None, "null") else run.attribute("loss")


def variant_sides(claim: Any, variant: LossVariant) -> list[tuple[str, str]]:
    """The claim's sides whose loss is one of ``variant``'s: (``candidate``/``baseline``, loss)."""
    return [(side, getattr(claim, side)["loss"]) for side in ("candidate", "baseline")
            if getattr(claim, side).get("loss") in variant.losses]


def missing_seeds(runs: Sequence[Any], selectors: Mapping[str, str], again: Sequence[Any]) -> set[str]:
    """The seeds of the side ``selectors`` describe in ``runs`` that its replacement runs ``again`` lack."""
    from ctbench.reports.claims import matches

    return ({str(r.attribute("seed")) for r in runs if matches(r, selectors)}
            - {str(r.attribute("seed")) for r in again})


def replaced_arm_runs(claims: Sequence[Any], runs: Sequence[Any], variant: LossVariant,
                      variants: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Per claim whose every side with one of ``variant``'s losses has ``variants`` runs of its loss that match its
    selectors, every seed of the side's runs among them: the runs to judge it on, each such side's runs replaced by
    those."""
    from ctbench.reports.claims import matches

    out: dict[str, list[Any]] = {}
    for claim in claims:
        if claim.columns is not None:  # compare: strata, one side of runs
            continue
        sides = [getattr(claim, side) for side, _ in variant_sides(claim, variant)]
        again = [[r for r in variants.get(selectors["loss"], ()) if matches(r, selectors)] for selectors in sides]
        complete = [side and not missing_seeds(runs, selectors, side) for selectors, side in zip(sides, again, strict=True)]
        if sides and all(complete):
            out[claim.id] = ([r for r in runs if not any(matches(r, selectors) for selectors in sides)]
                             + [r for side in again for r in side])
    return out


def chosen_variant_runs(checks: Sequence[Any], checks_dir: Path, variant: LossVariant
                        ) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """Each arm's choice of rate recorded in ``checks_dir/lr_choice.json`` for ``variant``, and the (arm, run) of
    ``checks`` trained at it with the variant's override (the runs :func:`variant_sensitivity` judges)."""
    suffix = variant.key("")
    chosen = {name.removesuffix(suffix): c for name, c in read_json(checks_dir / "lr_choice.json", {}).items()
              if name.endswith(suffix)}
    key, value = variant.override.split("=", 1)
    picked = [(arm, r) for arm, r in ((study_arm(r), r) for r in checks)
              if arm in chosen and r.attribute(LR_KEY) == chosen[arm]["chosen"] and r.attribute(key) == value]
    return chosen, picked


def variant_sensitivity(claims: Sequence[Any], runs: Sequence[Any], verdicts: Sequence[Any], shown: Sequence[str],
                        checks: Sequence[Any], checks_dir: Path, variant: LossVariant) -> list[str]:
    """Markdown lines: the ``shown`` claims with a side whose loss is one of ``variant``'s, and their verdicts with
    each such side's runs replaced by the same arm trained with the variant's setting (``checks``, each arm's runs
    with the variant's override at the rate recorded in ``checks_dir/lr_choice.json``), every claim whose such arms are all trained at once, in the
    declared family (a sensitivity analysis: the verdicts are the declared ones)."""
    from ctbench.reports.claims import evaluate_claims, matches

    chosen, picked = chosen_variant_runs(checks, checks_dir, variant)
    variants: dict[str, list[Any]] = {}
    for _, r in picked:
        variants.setdefault(r.attribute("loss"), []).append(r)
    mine = [c for c in claims if c.id in shown and c.columns is None and variant_sides(c, variant)]
    if not mine:
        return []
    replaced = replaced_arm_runs(claims, runs, variant, variants)
    declared = {v.claim.id: v for v in verdicts}
    redone = {v.claim.id: v for v in evaluate_claims(claims, runs, runs_of=replaced) if v.claim.id in replaced}
    epochs = {arm: "/".join(sorted({str(r.attribute(EPOCHS_KEY)) for a, r in picked if a == arm}, key=int)) or "?"
              for arm in chosen}
    grids = "; ".join(f"{arm}: " + ", ".join(f"{rate} {score:.3f}" for rate, score in c["validation"].items())
                      + f", {c['chosen']} chosen, {epochs[arm]} epochs" for arm, c in chosen.items()
                      ) or "no choice recorded yet"
    lines = ["", f"**{variant.title}** (not the verdicts). {variant.why}; `{checks_dir}/run.sh`, {len(checks)} runs: "
             f"each arm's learning rate chosen on the same grid by seed 0's best validation Dice ({grids}), seeds 0-2 "
             "at the arm's epoch tier, and every claim whose such sides are all trained so is judged again with them in "
             f"those sides' places, at once, in the declared family (m = {len(claims)}). Cells: mean difference "
             "[simultaneous interval], Holm p; converged (candidate/baseline); verdict.", "",
             f"| claim | sides | {variant.declared} | {variant.replaced} | seeds |", "|---|---|---|---|---|"]
    for claim in mine:
        now = redone.get(claim.id)
        untrained = []
        for side, loss in variant_sides(claim, variant):
            selectors = getattr(claim, side)
            trained = [r for r in variants.get(loss, ()) if matches(r, selectors)]
            if lacking := missing_seeds(runs, selectors, trained):
                untrained.append(f"{loss}{selectors.get('study.tag', '')}"
                                 + (f": seed {', '.join(sorted(lacking))} missing" if trained else ""))
        missing = f"not trained ({', '.join(dict.fromkeys(untrained))})"
        lines.append(f"| {claim.id} | {', '.join(f'{side} {loss}' for side, loss in variant_sides(claim, variant))} | "
                     f"{_sensitivity_cell(declared[claim.id])} | "
                     f"{_sensitivity_cell(now) if now is not None else missing} | "
                     f"{f'{now.candidate_runs}/{now.baseline_runs}' if now is not None else ''} |")
    return lines


@dataclass
class Job:
    """One ``ctbench`` command and the run folder it fills."""

    name: str
    task: str
    overrides: list[str]
    run_dir: Path
    after: list[Path] = field(default_factory=list)
    claims: set[str] = field(default_factory=set)
    status: str = "pending"
    #: overrides decided when the job starts (a choice made on the runs it waits for), and what they will be
    lazy: Callable[[], list[str]] | None = None
    note: str = ""
    #: a train job's composed config and run context (what ``ctbench train`` will run), for
    #: :func:`finished_with_another_config`
    composed: tuple[Any, Any] | None = None
    #: a tuning or source job's test whether its run is still needed (False once the choice it serves is recorded,
    #: or once every run trained from the source is complete: a fresh clone has the committed choices and runs, not
    #: the tuning or source runs' weights, and must not train or test them again)
    needed: Callable[[], bool] | None = None
    #: why the job is not needed when ``needed()`` is False
    unneeded: str = "the choice it tunes is recorded"
    #: a loss arm's seed-0 run: its learning-rate grid's run at the chosen rate, linked in, not trained again
    linked: bool = False
    #: why the job waits or is not run (a loss arm's seed 1 or 2: :meth:`LRArm.held`; any train job: every claim
    #: it serves is not evaluable, :func:`moot`), None when it may run
    held: Callable[[], str | None] | None = None
    #: the loss arm the job trains (its grid runs and seeds), None for a run at the configured rate
    arm: LRArm | None = None

    def command(self, ctbench: str, srun: bool) -> list[str]:
        cmd = [ctbench, self.task, *self.overrides, f"hydra.run.dir={self.run_dir}"]
        if self.task == "train":
            cmd.append("resume=true")  # resumes an interrupted job; starts one without a checkpoint
        return (["srun", "--cpus-per-task=1", f"--job-name={self.name}"] + cmd) if srun else cmd


def sweep_points(experiment: str) -> list[list[str]]:
    """The overrides of each job of ``experiment`` (the product of its ``hydra.sweeper.params``)."""
    from ctbench.safe_yaml import load_yaml

    data = load_yaml(EXPERIMENTS / f"{experiment}.yaml") or {}
    params = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    axes = [[f"{k}={v.strip()}" for v in str(values).split(",")] for k, values in params.items()]
    return [list(point) for point in itertools.product(*axes)]


def tuning_dir(study_dir: Path) -> Path:
    """The folder of the study's tuning runs (``multirun/claims_tuning``): beside its runs, never below them, so no
    claim selector sees them (``study report`` collects ``STUDY_DIR`` only)."""
    return study_dir.with_name(f"{study_dir.name}_tuning")


def read_json(path: Path, empty: Any) -> Any:
    """The JSON in one of the study's own record files, or ``empty`` before it is first written."""
    return json.loads(path.read_text()) if path.is_file() else empty


def record_choice(record: Path, key: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``key``'s entry of the JSON object in ``record``; made by ``make()`` and recorded when absent, so a
    resumed study reuses the choice it made before."""
    with _RECORDS:
        data = read_json(record, {})
        if key not in data:
            data[key] = make()
            atomic_write_json(record, data)
        return data[key]


def is_recorded(record: Path, key: str) -> bool:
    """Whether the JSON object in ``record`` has an entry ``key`` (a choice made before)."""
    with _RECORDS:
        return record.is_file() and key in json.loads(record.read_text())


def choose(scores: Mapping[str, float], preferred: str) -> str:
    """The key of the highest score; among ties ``preferred`` (the configured setting), else the first."""
    best = max(scores.values())
    tied = [key for key, value in scores.items() if value == best]
    return preferred if preferred in tied else tied[0]


def best_validation(run_dir: Path) -> float:
    """A training run's best validation ``val/mean_dice`` (the checkpoint-selection metric: its best checkpoint's
    score), from the learning curve of its ``summary.json`` convergence block."""
    from ctbench.run_folder import read_summary

    history = (read_summary(run_dir).get("convergence") or {}).get("history") or []
    values = [float(v) for _, v in history if math.isfinite(float(v))]
    if not values:
        raise CTBenchError(f"{run_dir}: summary.json has no validation value (convergence.history), which the "
                           "learning-rate choice needs: train it again with trainer.check_val_every_n_epoch set")
    return max(values)


def check_recorded(run_dir: Path, overrides: Sequence[str]) -> None:
    """Refuse a complete run whose config differs from the chosen ``overrides`` (it ran before the choice)."""
    from ctbench.reports.collect import config_value
    from ctbench.run_folder import is_complete

    if not is_complete(run_dir):
        return
    for override in overrides:
        key, value = override.split("=", 1)
        recorded = config_value(run_dir, key)
        try:
            same = recorded is not None and math.isclose(float(recorded), float(value))
        except ValueError:
            same = False
        if not same:
            raise CTBenchError(f"{run_dir} is complete with {key}={recorded}, not the chosen {value}: move it "
                               "out of the study folder and rerun `ctbench study run` to redo it")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # the same files, no second copy of the checkpoints
    except OSError:
        shutil.copy2(src, dst)


def seed_folder(seed0: Path, seed: int) -> Path:
    """A loss arm's run folder of ``seed``: its seed-0 folder's name with ``-seed0`` as ``-seedS``."""
    return seed0.with_name(seed0.name.replace("-seed0", f"-seed{seed}", 1))


def unconverged_run(run: Path) -> tuple[Path, str, Any] | None:
    """``(run, verdict, epochs)`` for a complete run that did not pass the convergence gate, else None."""
    from ctbench.run_folder import is_complete, read_summary

    if not is_complete(run):
        return None
    summary = read_summary(run)
    verdict = (summary.get("convergence") or {}).get("verdict")
    if verdict == "converged":
        return None
    return run, verdict or "without a convergence verdict", summary.get("epochs")


@dataclass
class LRArm:
    """A loss arm's learning rate: seed 0 trained at each rate of the grid, the best validation Dice chosen."""

    name: str  # the arm's seed-0 run folder name: its key in lr_choice.json
    seed0: Path  # the arm's seed-0 run folder: the grid run at the chosen rate (the same config, linked)
    grid: dict[str, Path]  # rate (as the override writes it) -> seed-0 run at that rate, in the tuning folder
    configured: str
    record: Path  # STUDY_DIR/lr_choice.json
    top_epochs: int | None = None  # the preset's top epoch tier (study.top_epochs): an arm moves no higher

    def chosen(self) -> str:
        """The recorded rate, else the best of the complete grid runs (recorded)."""
        def make() -> dict[str, Any]:
            scores = {rate: best_validation(run) for rate, run in self.grid.items()}
            return {"metric": "best validation val/mean_dice of seed 0", "configured": self.configured,
                    "validation": scores, "runs": {rate: str(run) for rate, run in self.grid.items()},
                    "chosen": choose(scores, self.configured)}

        return str(record_choice(self.record, self.name, make)["chosen"])

    def override(self) -> list[str]:
        return [f"{LR_KEY}={self.chosen()}"]

    def unconverged(self) -> tuple[Path, str, Any] | None:
        """``(run, verdict, epochs)`` once the rate is chosen and the chosen rate's seed-0 run is complete without
        passing the convergence gate, else None."""
        from ctbench.run_folder import is_complete

        if not is_recorded(self.record, self.name):
            return None
        return unconverged_run(self.seed0 if is_complete(self.seed0) else self.grid[self.chosen()])

    def seed_runs(self) -> list[Path]:
        """The arm's run folders of seeds 1 and 2."""
        return [seed_folder(self.seed0, s) for s in (1, 2)]

    def beyond_budget(self) -> str | None:
        """Why the arm's claims read not evaluable for good: its chosen seed 0, or a complete run of another seed,
        did not converge at the preset's top epoch tier (``study.top_epochs``); None otherwise."""
        if self.top_epochs is None:
            return None
        states = [(0, self.unconverged()), *((s, unconverged_run(r)) for s, r in enumerate(self.seed_runs(), 1))]
        for seed, state in states:
            if state is not None and isinstance(state[2], int) and state[2] >= self.top_epochs:
                run, verdict, epochs = state
                return (f"its arm's seed {seed} ({run}) is {verdict} at {epochs} epochs, the preset's top tier "
                        "(study.top_epochs): the arm does not converge within this preset's budget, so its claims "
                        "read not evaluable")
        return None

    def held(self) -> str | None:
        """Why seeds 1 and 2 wait, once the rate is chosen: the chosen rate's seed-0 run is complete and did not
        pass the convergence gate, so the arm moves up an epoch tier (``study.epochs_by_arm``) and every run of it
        is trained again; seeds trained at these epochs would be thrown away. None when they may run."""
        beyond = self.beyond_budget()
        if beyond:
            return f"{beyond}; its other seeds are not trained"
        state = self.unconverged()
        if state is None:
            return None
        run, verdict, epochs = state
        prefix, _, tag = self.name.partition("-seed0")
        return (f"its arm's seed 0 ({run}) is {verdict} at {epochs} "
                "epochs: move the arm up a tier (study.epochs_by_arm, configs/study/cpu.yaml), retire its runs "
                f"(scripts/move_arm_up_a_tier.py {prefix}{f' --tag={tag}' if tag else ''}), and rerun")

    def needs(self, rate: str) -> bool:
        """Whether the grid run at ``rate`` is needed: until the choice is recorded, and then only the chosen
        rate's while the arm's seed-0 folder, linked from it, does not exist."""
        if not is_recorded(self.record, self.name):
            return True
        return rate == self.chosen() and not self.seed0.exists()

    def seed_zero(self) -> list[str]:
        """The chosen rate for seed 0, whose run is the grid run at that rate: linked into the arm's folder
        (unless that folder exists: complete, or interrupted, then resumed at the chosen rate)."""
        rate = self.chosen()
        if not self.seed0.exists():
            partial = self.grid[rate].with_name(f"{self.seed0.name}.linking")  # outside STUDY_DIR until whole
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(self.grid[rate], partial, copy_function=_link_or_copy)
            partial.rename(self.seed0)
        return [f"{LR_KEY}={rate}"]


@dataclass
class CRFTuning:
    """One DeepLab run's dense CRF weights: each setting of :data:`CRF_GRID` tested on its validation cases, the
    best mean Dice chosen (the metric DeepLab tuned its CRF on, one for both boundary claims)."""

    name: str  # the training run's folder name: its key in crf_choice.json
    grid: dict[str, Path]  # setting -> its validation eval folder, in the tuning folder
    record: Path  # STUDY_DIR/crf_choice.json

    def needed(self) -> bool:
        """Whether the validation runs are needed: until the choice is recorded."""
        return not is_recorded(self.record, self.name)

    def override(self) -> list[str]:
        from ctbench.run_folder import read_summary

        def make() -> dict[str, Any]:
            scores = {label: float(read_summary(run)["mean_dice"]) for label, run in self.grid.items()}
            chosen = choose(scores, next(iter(scores)))
            return {"metric": "mean_dice, validation cases", "validation": scores, "chosen": chosen,
                    "settings": CRF_GRID[chosen], "runs": {label: str(run) for label, run in self.grid.items()}}

        return [f"crf.{k}={v:g}" for k, v in record_choice(self.record, self.name, make)["settings"].items()]


def plan(claims: Sequence[str], study: str) -> list[Job]:
    """Every job of ``claims``, each run folder once, in claim order (dependencies after their sources);
    run folders relative to the working folder.

    A loss arm (:data:`LR_EXPERIMENTS`) trains seed 0 at the 3 rates of :data:`LR_FACTORS` in the tuning folder;
    its seed-0 job links the best one in and its seeds 1 and 2 train at that rate. A DeepLab run of
    :data:`CRF_EXPERIMENTS` is tested on its validation cases with each :data:`CRF_GRID` setting, then once with
    the CRF at the best and once without."""
    from omegaconf import OmegaConf

    from ctbench.config import compose_with_context
    from ctbench.reports.claims import load_claims

    jobs: dict[Path, Job] = {}
    arms: dict[Path, LRArm] = {}
    extra = [] if study == "cpu" else [f"study={study}"]

    def add(job: Job, claim: str) -> Job:
        kept = jobs.setdefault(job.run_dir, job)
        if (kept.lazy is None) != (job.lazy is None):
            raise CTBenchError(f"{job.run_dir}: one experiment trains it at the configured learning rate, another "
                               f"({job.overrides[0]}) at a tuned one: list it in study.LR_EXPERIMENTS or in neither")
        kept.claims.add(claim)
        return kept

    composed: dict[tuple[str, ...], tuple[Path, Any, Any]] = {}

    def compose(overrides: list[str]) -> tuple[Path, Any, Any]:
        """The job's run folder (relative), config and run context."""
        if tuple(overrides) not in composed:
            cfg, ctx = compose_with_context("train", overrides)
            composed[tuple(overrides)] = Path(os.path.relpath(ctx.run_dir.resolve(), Path.cwd())), cfg, ctx
        return composed[tuple(overrides)]

    def lr_arm(overrides: list[str], claim: str) -> LRArm:
        seed0_overrides = [o if not o.startswith("seed=") else "seed=0" for o in overrides]
        seed0, cfg, _ = compose(seed0_overrides)
        if seed0 not in arms:
            configured = float(OmegaConf.select(cfg, LR_KEY))
            grid = {f"{configured * f:.3g}": tuning_dir(seed0.parent) / f"{seed0.name}-lr{configured * f:.3g}"
                    for f in LR_FACTORS}
            top = OmegaConf.select(cfg, "study.top_epochs")
            arms[seed0] = LRArm(seed0.name, seed0, grid, f"{configured:.3g}", seed0.parent / "lr_choice.json",
                                None if top is None else int(top))
        for rate, run_dir in arms[seed0].grid.items():
            rate_overrides = [*seed0_overrides, f"{LR_KEY}={rate}"]
            add(Job(run_dir.name, "train", rate_overrides, run_dir, composed=compose(rate_overrides)[1:],
                    needed=lambda arm=arms[seed0], rate=rate: arm.needs(rate), arm=arms[seed0]), claim)
        return arms[seed0]

    for claim in claims:
        sources: list[Path] = []
        for experiment in CLAIMS[claim][2]:
            for point in sweep_points(experiment):
                overrides = [f"experiment=claims/{experiment}", *point, *extra]
                run_dir, cfg, ctx = compose(overrides)
                job = Job(run_dir.name, "train", overrides, run_dir, after=list(sources), composed=(cfg, ctx))
                if experiment in LR_EXPERIMENTS:
                    arm = lr_arm(overrides, claim)
                    job.after += list(arm.grid.values())
                    job.lazy, job.linked = (arm.seed_zero, True) if run_dir == arm.seed0 else (arm.override, False)
                    job.held, job.arm = None if job.linked else arm.held, arm
                    job.note = f"{LR_KEY}=<the best of {', '.join(arm.grid)} on seed 0's validation Dice>"
                job = add(job, claim)
                if experiment == "c10_source":
                    sources.append(job.run_dir)
                if experiment in CRF_EXPERIMENTS and claim in CRF_CLAIMS:
                    ckpt = run_dir / "checkpoints" / "best.ckpt"
                    # the training overrides again: eval takes data locations from the local configs only
                    null = run_dir.parent / f"{run_dir.name}-eval-null"
                    add(Job(null.name, "eval", [f"ckpt_path={ckpt}", "postprocess=null", *overrides], null,
                            after=[run_dir]), claim)
                    tuning = CRFTuning(run_dir.name, {label: tuning_dir(run_dir.parent) / f"{run_dir.name}-val-crf-"
                                                      f"{label}" for label in CRF_GRID}, run_dir.parent / "crf_choice.json")
                    for label, val_dir in tuning.grid.items():
                        settings = [f"crf.{k}={v:g}" for k, v in CRF_GRID[label].items()]
                        add(Job(val_dir.name, "eval", [f"ckpt_path={ckpt}", "postprocess=crf", "split=val", *settings,
                                                       *overrides], val_dir, after=[run_dir],
                                needed=tuning.needed), claim)
                    crf = run_dir.parent / f"{run_dir.name}-eval-crf"
                    add(Job(crf.name, "eval", [f"ckpt_path={ckpt}", "postprocess=crf", *overrides], crf,
                            after=list(tuning.grid.values()), lazy=tuning.override,
                            note=f"crf.*=<the best of {', '.join(CRF_GRID)} on the validation cases>"), claim)
    planned = list(jobs.values())
    for source in (j for j in planned if "experiment=claims/c10_source" in j.overrides):  # needed while a run
        users = [j for j in planned if source.run_dir in j.after]  # trained from it is not complete
        source.needed = functools.partial(any_incomplete, users)
        source.unneeded = "every run trained from it is complete (its weights are not kept in git)"
    files = load_claims(CLAIMS_DIR)  # every claim file: a job that an unselected claim still needs is not held
    for job in planned:
        if job.composed is not None:
            job.held = functools.partial(moot, job, files, planned, job.held)
    return planned


def any_incomplete(jobs: Sequence[Job]) -> bool:
    """Whether any of ``jobs`` has no complete run folder yet."""
    from ctbench.run_folder import is_complete

    return not all(is_complete(j.run_dir) for j in jobs)


def job_attribute(job: Job, key: str) -> str | None:
    """A train job's value for a claim selector, as :meth:`ctbench.reports.collect.Run.attribute` reads it from
    the run the job will make: ``model``/``loss`` (the config choices), a command-line override, else a key of
    its composed config (``null`` for a null value, None when absent)."""
    from omegaconf import OmegaConf

    cfg, ctx = job.composed
    if key in ("model", "loss"):
        return ctx.choices.get(key)
    given = dict(o.split("=", 1) for o in job.overrides if "=" in o)
    if key in given:
        return given[key]
    value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    if OmegaConf.is_config(value):
        return None
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def moot(job: Job, claims: Sequence[Any], jobs: Sequence[Job], held: Callable[[], str | None] | None) -> str | None:
    """Why a train job is not run: ``held`` (its own arm waits), or every claim file whose side it belongs to has
    a side with a loss arm beyond the preset's budget (:meth:`LRArm.beyond_budget`), so its runs could change
    no verdict. None when it may run, and for a job that belongs to no claim side.

    ``claims``: every claim file, not only those ``--only`` selects, so that ``--only C22`` does not hold a job
    another claim still needs; ``jobs``: the planned jobs, whose loss arms are the ones known (an arm beyond the
    budget among them is enough: a claim with one such side reads not evaluable whatever its other arms give)."""
    reason = held() if held is not None else None
    if reason:
        return reason

    def on(side: Mapping[str, str], one: Job) -> bool:
        return one.composed is not None and all(job_attribute(one, k) == v for k, v in side.items())

    served = [c for c in claims if on(c.candidate, job) or on(c.baseline, job)]
    why: dict[str, str] = {}
    for claim in served:
        arms = {one.arm.name: one.arm for side in (claim.candidate, claim.baseline) for one in jobs
                if one.arm is not None and on(side, one)}
        beyond = next((b for arm in arms.values() if (b := arm.beyond_budget())), None)
        if beyond is None:
            return None
        why[claim.id.split("-")[0]] = beyond
    if not why:
        return None
    return (f"every claim it serves ({', '.join(why)}) reads not evaluable whatever it gives: "
            f"{next(iter(why.values())).replace('its arm', 'an arm', 1)}")


def finished_with_another_config(jobs: Sequence[Job]) -> list[str]:
    """``RUN: why`` for each complete run folder that does not hold the run its job asks for now: a training
    run of another config (:func:`ctbench.engine.run.check_finished_run`, e.g. trained 60 epochs where the
    preset now gives its network 100), or an evaluation older than the checkpoint it tested. Skipped as
    complete, such a folder would stand in the verdicts for a run that was never made."""
    from omegaconf import OmegaConf

    from ctbench.engine.run import finished_run_differences, run_config
    from ctbench.run_folder import is_complete, summary_path

    found = []
    for job in jobs:
        if not is_complete(job.run_dir):
            continue
        if job.task == "eval":
            ckpt = Path(next(o for o in job.overrides if o.startswith("ckpt_path=")).split("=", 1)[1])
            if ckpt.is_file() and ckpt.stat().st_mtime > summary_path(job.run_dir).stat().st_mtime:
                found.append(f"{job.run_dir}: tested {ckpt} before that run was trained again")
        elif job.composed is not None:
            cfg, ctx = job.composed
            cfg = run_config(OmegaConf.create(OmegaConf.to_container(cfg)), ctx)  # a copy: the plan's stays as is
            ignore = (f"{LR_KEY}:",) if job.lazy is not None else ()  # its chosen rate: check_recorded
            differences = finished_run_differences(cfg, job.run_dir, ignore)
            if differences:
                found.append(f"{job.run_dir}: {'; '.join(differences)}")
    return found


def ctbench_executable() -> str:
    """The ``ctbench`` beside the running Python (a venv's), else the one on PATH."""
    return shutil.which("ctbench", path=str(Path(sys.executable).parent)) or shutil.which("ctbench") or "ctbench"


def spawn(cmd: list[str], env: Mapping[str, str], log_file: Path) -> tuple[int, float]:
    """Run ``cmd`` with its output appended to ``log_file`` (a resumed job's earlier segments stay there); its
    exit status and its own CPU seconds (whatever else runs)."""
    with log_file.open("a") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, wait_status, usage = os.wait4(proc.pid, 0)
        proc.returncode = rc = os.waitstatus_to_exitcode(wait_status)
    return rc, usage.ru_utime + usage.ru_stime


def earlier_segments(record: Any, run_dir: Path, log_file: Path) -> list[dict[str, float | None]]:
    """The time a job already spent in ``run_dir`` before this start, from its ``study_jobs.json`` ``record``:
    a failed attempt's segments, a segment left ``running`` by a killed study, closed at ``log_file``'s
    last write (CPU time unknown), and a complete run's (``done``) when its report was removed and the job
    resumes from the checkpoint that time produced. Only for the same folder (its inode, ``folder_inode``):
    nothing when the folder was removed since, or a complete run's folder was emptied (the job starts
    afresh)."""
    if not (isinstance(record, dict) and run_dir.is_dir() and record.get("folder_inode") == run_dir.stat().st_ino):
        return []
    status = record.get("status")
    if not (status in ("failed", "running")
            or status == "done" and (run_dir / "checkpoints" / "last.ckpt").is_file()):
        return []
    segments = record.get("segments")
    segments = [s for s in segments if isinstance(s, dict) and isinstance(s.get("seconds"), (int, float))] \
        if isinstance(segments, list) else []
    started = record.get("started")
    if record.get("status") == "running" and isinstance(started, (int, float)) and log_file.is_file():
        segments.append({"seconds": round(max(0.0, log_file.stat().st_mtime - started), 1), "cpu_seconds": None})
    return segments


RETIRED_FILE = "study_jobs_retired.json"


def retire(study_dir: Path, run_dir: str, record: Any) -> None:
    """Append ``record``, a run folder's ``study_jobs.json`` entry whose time the folder's new start does not carry
    (the run was removed to train at another epoch tier, or its folder was replaced), to
    ``STUDY_DIR/study_jobs_retired.json``: what the study spent stays counted when the run it spent it on is
    retrained. A record without time is dropped."""
    if not (isinstance(record, dict) and isinstance(record.get("seconds"), (int, float)) and record["seconds"] > 0):
        return
    path = study_dir / RETIRED_FILE
    retired = read_json(path, [])
    atomic_write_json(path, [*retired, {"run_dir": run_dir, **record, "retired_at": round(time.time(), 1)}])


def retired_seconds(study_dir: Path) -> float:
    """The job wall time of the study's retired runs (:func:`retire`), 0 without any."""
    records = read_json(study_dir / RETIRED_FILE, [])
    return sum(r["seconds"] for r in records if isinstance(r, dict) and isinstance(r.get("seconds"), (int, float)))


def _epochs(job: Job) -> int | None:
    """A train job's configured epochs (None for an evaluation, or a job without a composed config)."""
    if job.task != "train" or job.composed is None:
        return None
    return int(job.composed[0].trainer.max_epochs)


def _record(job: Job, status: str, segments: list[dict[str, float | None]], **extra: Any) -> dict[str, Any]:
    """``study_jobs.json``'s entry for ``job``: wall seconds over all segments, CPU seconds over those known,
    the run folder's inode (which folder the segments were spent in) and a training's epochs."""
    inode = job.run_dir.stat().st_ino if job.run_dir.is_dir() else None
    return {"task": job.task, "overrides": job.overrides, "status": status,
            "seconds": round(sum(s["seconds"] for s in segments), 1),
            "cpu_seconds": round(sum(s["cpu_seconds"] or 0.0 for s in segments), 1),
            "segments": segments, "folder_inode": inode, "epochs": _epochs(job), "claims": sorted(job.claims), **extra}


def parse_deadline(text: str, now: float | None = None) -> float:
    """``--deadline``: a duration (``45m``, ``2h``, ``1h30m``) or a local clock time (``18:45``, the next one), as
    seconds since the epoch."""
    import re
    from datetime import datetime, timedelta

    now = time.time() if now is None else now
    duration = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?", text.strip())
    if duration and any(duration.groups()):
        hours, minutes = (int(g or 0) for g in duration.groups())
        return now + 3600 * hours + 60 * minutes
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if clock and int(clock[1]) < 24 and int(clock[2]) < 60:
        start = datetime.fromtimestamp(now)
        at = start.replace(hour=int(clock[1]), minute=int(clock[2]), second=0, microsecond=0)
        return (at if at > start else at + timedelta(days=1)).timestamp()
    raise CTBenchError(f"--deadline {text}: give a duration (90m, 2h, 2h30m) or a clock time (18:45)", exit_code=2)


def _network(task: str, run_dir: Path) -> str:
    """What a job's time depends on besides its epochs: the task, the network and its dimensions (the run folder's
    ``MODEL-LOSS-DIMSd-...`` name)."""
    return f"{task}:{run_dir.name.split('-')[0]}:{'3d' if '-3d-' in run_dir.name else '2d'}"


def measured_rates(jobs: Sequence[Job], times: Mapping[str, Any]) -> dict[str, list[float]]:
    """Per network (:func:`_network`), the seconds per epoch (per job, for an evaluation) of its jobs recorded
    ``done`` in ``times`` (``study_jobs.json``), by run folder. A record's epochs are its own (``epochs``) or, for
    an older record whose folder holds the plan's complete run, the plan's (a removed run's are unknown)."""
    from ctbench.run_folder import is_complete

    planned = {str(j.run_dir): j for j in jobs}
    rates: dict[str, dict[str, float]] = {}
    for path, record in times.items():
        if not isinstance(record, dict) or record.get("status") != "done" \
                or not isinstance(record.get("seconds"), (int, float)) or record["seconds"] <= 0:
            continue
        task, epochs = str(record.get("task")), record.get("epochs")
        if task == "train" and epochs is None and path in planned and is_complete(Path(path)):
            epochs = _epochs(planned[path])
        if task != "train" or isinstance(epochs, int) and epochs > 0:
            rates.setdefault(_network(task, Path(path)), {})[path] = record["seconds"] / (epochs or 1)
    return rates


def expected_seconds(job: Job, jobs: Sequence[Job], times: Mapping[str, Any], log_file: Path,
                     slowest: bool = False) -> float | None:
    """The wall time ``job`` is expected to take from now: the mean of :func:`measured_rates` of its network (its
    own record aside) times its epochs, less the seconds it already spent in its folder (at least a tenth of the
    whole remains). A network not measured yet: None, or with ``slowest`` the slowest measured network's mean
    rate of the same task and dimensions (None when there is none either)."""
    network = _network(job.task, job.run_dir)
    means = {key: sum(r.values()) / len(r) for key, by_run in measured_rates(jobs, times).items()
             if (r := {path: v for path, v in by_run.items() if path != str(job.run_dir)})}
    rate = means.get(network)
    if rate is None and slowest:
        kind = network.split(":")
        rate = max((v for key, v in means.items() if key.split(":")[::2] == kind[::2]), default=None)
    if rate is None:
        return None
    whole = rate * (_epochs(job) or 1)
    spent = sum(s["seconds"] for s in earlier_segments(times.get(str(job.run_dir)), job.run_dir, log_file))
    return max(whole - spent, whole / 10)


def _times(study_dir: Path) -> dict[str, Any]:
    """``STUDY_DIR/study_jobs.json`` (empty before the first job)."""
    return read_json(study_dir / "study_jobs.json", {})


def what_is_left(job: Job, jobs: Sequence[Job], times: Mapping[str, Any],
                 log_dir: Path) -> tuple[str, float | None, float | None]:
    """What is left of ``job``: a note, its :func:`expected_seconds` (None when it has nothing to run or its network
    was not measured) and, for a network not measured, the time at the slowest measured network's rate."""
    from ctbench.run_folder import is_complete

    if is_complete(job.run_dir):
        return "complete", None, None
    if job.needed is not None and not job.needed():
        return f"not needed: {job.unneeded}", None, None
    if job.linked:
        return "linked from its grid run", None, None
    held = job.held() if job.held is not None else None
    if held:
        return f"held: {held}", None, None
    log = log_dir / f"{job.name}.log"
    seconds = expected_seconds(job, jobs, times, log)
    elsewhere = "running in another process now; " if folder_lock.in_use(job.run_dir) else ""
    if seconds is not None:
        return f"{elsewhere}expected {seconds / 60:.0f} min", seconds, None
    bound = expected_seconds(job, jobs, times, log, slowest=True)
    return f"{elsewhere}no measured time" + (f"; {bound / 60:.0f} min at the slowest measured network's rate"
                                 if bound is not None else ""), None, bound or 0.0


def time_left(left: Sequence[tuple[str, float | None, float | None]], workers: int) -> str:
    """One sentence on the jobs still to run, from :func:`what_is_left` of each job."""
    expected = [s for _, s, _ in left if s is not None]
    bounds = [b for _, _, b in left if b is not None]
    total = sum(expected) / 3600
    count = len(expected) + len(bounds)
    return (f"to run: {count} job{'s' * (count != 1)}; {len(expected)} of them expected to take {total:.1f} h of "
            f"job time ({total / workers:.1f} h with --jobs {workers}), from the measured seconds per epoch of their "
            f"networks' finished jobs; {len(bounds)} without a measured time"
            + (f" ({sum(bounds) / 3600:.1f} h at the slowest measured network's rate)" if bounds else ""))


RUNS_FILE = "study_runs.json"


def record_span(study_dir: Path, index: int | None, finished: bool = False, **info: Any) -> int:
    """The study's wall time, one span per ``ctbench study run`` in ``STUDY_DIR/study_runs.json``: a new span
    (``index`` None, ``info`` stored with it) starts now; an existing one is extended to now, at each job's end and
    once more when the run ends (``finished``). A study killed at a session's end keeps its span to its last job's
    end. Returns the span's index. Hold ``folder_lock.waiting(study_dir)`` around it when others may write."""
    path = study_dir / RUNS_FILE
    spans = read_json(path, [])
    now = round(time.time(), 1)
    if index is None:
        spans.append({"started": now, "ended": now, "finished": False, **info})
        index = len(spans) - 1
    else:
        spans[index].update(ended=now, finished=finished)
    atomic_write_json(path, spans)
    return index


def study_wall_seconds(study_dir: Path) -> tuple[int, float]:
    """How many ``study run`` spans ``study_runs.json`` records, and their wall seconds (0, 0.0 without it)."""
    spans = read_json(study_dir / RUNS_FILE, [])
    return len(spans), sum(max(0.0, s["ended"] - s["started"]) for s in spans)


def run_jobs(jobs: list[Job], workers: int, srun: bool, study_dir: Path, log_dir: Path,
             deadline: float | None = None) -> None:
    """Run ``jobs`` ``workers`` at a time (a job waits for the jobs it depends on); times to study_jobs.json. With
    a ``deadline`` (seconds since the epoch) a job expected to end after it is not started (status
    ``deferred``, as are the jobs that wait for it); a network not measured yet is expected to be as slow as the
    slowest one measured, and with nothing measured a job is started before the deadline. Of the jobs ready to
    start, an interrupted one (it has ``checkpoints/last.ckpt``) starts first, then the others in order."""
    from ctbench.run_folder import checkpoint_path, is_complete

    ctbench = ctbench_executable()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    lock = threading.Condition()
    by_dir = {j.run_dir: j for j in jobs}
    log_dir.mkdir(parents=True, exist_ok=True)
    times_file = study_dir / "study_jobs.json"
    printing = threading.Lock()

    def say(line: str) -> None:
        """One whole line of the study's log: two workers' lines do not run into each other."""
        with printing:
            print(line, flush=True)

    def ready(job: Job) -> bool:
        return job.status == "pending" and all(by_dir[d].status in ("done", "skipped") for d in job.after
                                               if d in by_dir)

    def blocked(job: Job) -> str | None:
        """``failed``, ``deferred``, ``held`` or ``busy`` when a job it waits for is."""
        if job.status != "pending":
            return None
        return next((by_dir[d].status for d in job.after if d in by_dir
                     and by_dir[d].status in ("failed", "deferred", "held", "busy")), None)

    def worker() -> None:
        while True:
            with lock:
                for job in jobs:
                    cause = blocked(job)
                    if cause:
                        job.status = cause
                        say(f"[study] {job.name}: not run, a job it needs " + {
                            "failed": "failed", "held": "is held", "busy": "is running in another process"}.get(
                                cause, "was not started before the deadline"))
                pending = [j for j in jobs if j.status == "pending"]
                if not pending:
                    lock.notify_all()
                    return
                startable = [j for j in pending if ready(j)]
                # an interrupted job (it has a checkpoint) goes first: its finished epochs are not lost when the
                # next session's deadline comes, whatever its place in --only
                job = next((j for j in startable if checkpoint_path(j.run_dir).is_file()),
                           startable[0] if startable else None)
                if job is None:
                    lock.wait(timeout=5)
                    continue
                job.status = "running"
            status, seconds, cpu_seconds, spawned, complete = "failed", 0.0, 0.0, False, False
            log_file = log_dir / f"{job.name}.log"
            try:
                if job.lazy is not None:  # a choice made now, on the runs the job waited for
                    chosen, job.lazy = job.lazy(), None
                    job.overrides = [*job.overrides, *chosen]
                    check_recorded(job.run_dir, chosen)
                complete = is_complete(job.run_dir)
                needed = complete or job.needed is None or job.needed()
                held = job.held() if job.held is not None and not complete else None
            except (CTBenchError, OSError) as err:
                say(f"[study] {job.name}: not run: {err}")
            else:
                if not complete and needed and not held and folder_lock.in_use(job.run_dir):
                    status = "busy"
                    say(f"[study] {job.name}: not run, another process is running it now (a second study or a job "
                        "started by hand): this study's next run takes it up if it does not finish")
                elif held:
                    status = "held"
                    say(f"[study] {job.name}: not run, {held}")
                elif not needed:
                    status = "skipped"
                    say(f"[study] {job.name}: not needed, {job.unneeded}")
                elif complete:
                    status = "skipped"
                    say(f"[study] {job.name}: complete, skipped")
                else:
                    # merged into the file as it is now: another study may share it
                    with lock, folder_lock.waiting(study_dir):
                        times = read_json(times_file, {})
                        expected = expected_seconds(job, jobs, times, log_file, slowest=True)
                        late = deadline is not None and time.time() + (expected or 0.0) > deadline
                        if not late:
                            say(f"[study] {job.name}: {' '.join(job.command('ctbench', srun)[1:])}"
                                + (f"  (expected {expected / 60:.0f} min)" if expected is not None else ""))
                            earlier = earlier_segments(times.get(str(job.run_dir)), job.run_dir, log_file)
                            if not earlier:  # the folder starts afresh: the time of the run it replaces is kept
                                retire(study_dir, str(job.run_dir), times.get(str(job.run_dir)))
                            job.run_dir.mkdir(parents=True, exist_ok=True)  # its inode identifies the folder
                            times[str(job.run_dir)] = _record(job, "running", earlier, started=round(time.time(), 1))
                            atomic_write_json(times_file, times)
                    if late:
                        status = "deferred"
                        left = max(0.0, deadline - time.time()) / 60
                        say(f"[study] {job.name}: not started, " + (f"expected {expected / 60:.0f} min, {left:.0f} min "
                            "left before the deadline" if expected is not None else "the deadline has passed"))
                    else:
                        start, spawned = time.perf_counter(), True
                        try:
                            rc, cpu_seconds = spawn(job.command(ctbench, srun), env, log_file)
                        except OSError as err:  # a dead worker thread would leave the study waiting for ever
                            say(f"[study] {job.name}: could not be started: {err}")
                            rc = -1
                        seconds = time.perf_counter() - start
                        status = "done" if rc == 0 and is_complete(job.run_dir) else "failed"
                        total = seconds + sum(s["seconds"] for s in earlier)
                        say(f"[study] {job.name}: {status} in {seconds / 60:.1f} min ({cpu_seconds / 60:.1f} min CPU)"
                              + (f", {total / 60:.1f} min over {len(earlier) + 1} segments" if earlier else "")
                              + ("" if status == "done" else f" (exit {rc}; log {log_file})"))
            with lock, folder_lock.waiting(study_dir):
                job.status = status
                times = read_json(times_file, {})
                record = times.get(str(job.run_dir))
                # a run that finished while its study was killed: its record was left running, closed here
                left_running = complete and not spawned and isinstance(record, dict) and record.get("status") == "running"
                if status not in ("skipped", "deferred", "held", "busy") or left_running:
                    segments = [*earlier, {"seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1)}] \
                        if spawned else earlier_segments(record, job.run_dir, log_file)
                    times[str(job.run_dir)] = _record(job, "done" if left_running else status, segments)
                    atomic_write_json(times_file, times)
                if spawned:
                    record_span(study_dir, span)
                lock.notify_all()

    study_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock.waiting(study_dir):
        span = record_span(study_dir, None, workers=workers, jobs=len(jobs))
    threads = [threading.Thread(target=worker) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with folder_lock.waiting(study_dir):
        record_span(study_dir, span, finished=True)


def claim_figures(claims: Sequence[Any], runs: Sequence[Any], out: Path) -> dict[str, Path]:
    """Per claim file, per-case candidate vs baseline values (seed means) on one plot: ``out/ID.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ctbench.reports.claims import arm_values, metric_label, side_labels, sides

    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    for claim in claims:
        candidate, baseline = sides(claim, runs)
        if not candidate or not baseline or any(claim.metric not in r.values for r in (*candidate, *baseline)):
            continue
        cases, a, b = arm_values(claim, candidate, baseline)
        if not cases:
            continue
        y, x = a.mean(axis=0), b.mean(axis=0)
        label = metric_label(claim)
        candidate_label, baseline_label = side_labels(claim)
        fig, ax = plt.subplots(figsize=(3.6, 3.6), dpi=110)
        finite = [v for v in [*x, *y] if math.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1, zorder=0)
        ax.scatter(x, y, s=14, alpha=0.7)
        ax.set_xlabel(f"baseline: {baseline_label}", fontsize=7)
        ax.set_ylabel(f"candidate: {candidate_label}", fontsize=7)
        ax.set_title(f"{claim.id}\n{label}, {len(cases)} cases x {len(candidate)}/{len(baseline)} runs", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        figures[claim.id] = out / f"{claim.id}.png"
        fig.savefig(figures[claim.id])
        plt.close(fig)
    return figures


def _num(value: float) -> str:
    return "" if math.isnan(value) else f"{value:+.3g}"


def choice_lines(study_dir: Path) -> list[str]:
    """The recorded learning-rate and CRF choices (``lr_choice.json``, ``crf_choice.json``) as two tables."""
    lines: list[str] = []
    tables = (("lr_choice.json", "Learning rate of each loss arm (its seed 0 trained at each rate; the best validation "
               "`val/mean_dice` over the run chosen, ties to the configured rate; seeds 1 and 2 train at it). "
               "The Dice-CE U-Net of the architecture claims keeps the configured rate. A rate at the grid's edge "
               "is marked: a better one may lie outside the grid", "arm"),
              ("crf_choice.json", "Dense CRF weights of each DeepLab run (each setting tested on the run's validation "
               "cases; the best mean Dice chosen, then the test set once)", "run"))
    for name, title, what in tables:
        record = study_dir / name
        if not record.is_file():
            continue
        arms = what == "arm"
        lines += ["", f"{title}; `{record}`:", ""]
        if arms:
            lines += ["*Edge lead*: at an edge choice, its score minus the next rate's, against the seed SD of the arm's "
                      "best validation Dice at the chosen rate (its complete seeds): both scores are one run each, so "
                      "their difference has an SD of about 1.4 seed SDs, and a lead under about 3 seed SDs is within "
                      "seed noise (the edge choice says nothing about rates outside the grid).", ""]
        lines += [f"| {what} | validation score per setting | chosen |" + (" edge lead (seed SD) |" if arms else ""),
                  "|---|---|---|" + ("---|" if arms else "")]
        for key, choice in json.loads(record.read_text()).items():
            scores = ", ".join(f"{k}: {v:.3f}" for k, v in choice["validation"].items())
            lines.append(f"| {key} | {scores} | **{choice['chosen']}**{grid_edge(choice) if arms else ''} |"
                         + ((f" {lead} |" if (lead := edge_lead(study_dir, key, choice)) else " |") if arms else ""))
    return lines


def edge_lead(study_dir: Path, key: str, choice: Mapping[str, Any]) -> str:
    """``+0.007 (0.002, 3 seeds; 3.1 SD)`` for an edge choice (:func:`grid_edge`): its score minus the next rate's,
    and the seed SD of the arm's best validation Dice at the chosen rate (its complete seed runs, :func:`seed_folder`
    of ``STUDY_DIR/KEY``); ``""`` for an inner choice."""
    from ctbench.run_folder import is_complete

    if not grid_edge(choice):
        return ""
    rates = sorted(choice["validation"], key=float)
    chosen = str(choice["chosen"])
    lead = choice["validation"][chosen] - choice["validation"][rates[1] if chosen == rates[0] else rates[-2]]
    runs = [seed_folder(study_dir / key, s) for s in range(3)]
    seeds = [best_validation(r) for r in runs if is_complete(r)]
    if len(seeds) < 2:
        return f"{lead:+.3f} ({len(seeds)} seed{'s' * (len(seeds) != 1)})"
    sd = statistics.stdev(seeds)
    return f"{lead:+.3f} ({sd:.3f}, {len(seeds)} seeds; {lead / sd:.1f} SD)" if sd > 0 else f"{lead:+.3f} (SD 0)"


def grid_edge(choice: Mapping[str, Any]) -> str:
    """`` (lowest of the grid)`` or `` (highest of the grid)`` when a recorded learning-rate choice is at an end of
    its grid, else ``""``."""
    rates = sorted(float(r) for r in choice["validation"])
    chosen = float(choice["chosen"])
    if len(rates) < 2 or rates[0] < chosen < rates[-1]:
        return ""
    return " (lowest of the grid)" if chosen == rates[0] else " (highest of the grid)"


def write_doc(doc: Path, verdicts: Sequence[Any], c9: Sequence[Any], figures: dict[str, Path], times: dict,
              args: argparse.Namespace, selected: Sequence[str], extra: Sequence[str] = (), left: str = "") -> None:
    """The study section of ``doc``: a row per claim file (and C9's), the rule, the commands, the figures, then
    ``extra`` lines (learning curves, C4c in the survey's terms); ``left``: :func:`time_left` of the study."""
    from ctbench.reports.claims import levels, metric_label, verdict_label, verdict_rule
    from ctbench.reports.figure9 import figure9_markdown, stratum_verdicts

    claim_seconds = {c: sum(v["seconds"] for v in times.values() if c in v["claims"]) for c in CLAIMS}
    cpu_seconds = sum(v.get("cpu_seconds", 0.0) for v in times.values())
    command = f"ctbench study {args.action}" + (f" study={args.study}" if args.study != "cpu" else "") \
        + (f" --only {' '.join(args.only)}" if args.only else "")
    family = verdicts[0].family_size if verdicts else 0
    retired = retired_seconds(args.study_dir)
    spans, wall = study_wall_seconds(args.study_dir)
    lines = [f"Generated by `{command}` from the complete runs below `{args.study_dir}`; "
             f"{sum(v['seconds'] for v in times.values()) / 60:.0f} min of job wall time recorded for these runs "
             f"({cpu_seconds / 60:.0f} min of job CPU time where recorded)"
             + (f" and {retired / 60:.0f} min in runs retired since (`{RETIRED_FILE}`)" if retired else "")
             + (f"; {spans} `ctbench study run`(s) recorded, {wall / 3600:.1f} h of the study's wall time (`{RUNS_FILE}`)"
                if spans else "")
             + (f"; still {left} (`ctbench study run --dry-run`)" if left else "") + ". Per claim, "
             "*time* is the sum of its jobs' wall times (runs shared with an earlier claim counted again). "
             "Differences are candidate minus baseline with the simultaneous interval of the verdict rule "
             "(below); *converged*: candidate/baseline runs all `converged` (true), one not (false), one without a "
             "record (unknown).", "",
             "| claim | survey (section) | statement tested | metric | margin | cases x runs | candidate / baseline "
             "| mean diff [simultaneous CI] | p (Holm) | converged | seeds for 80% power | verdict | time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, (says, section, _) in CLAIMS.items():
        if key not in selected:
            continue
        if key == "C9":
            for i, (stratum, verdict) in enumerate(stratum_verdicts(c9).items() if c9 else ()):
                lines.append(f"| C9-{stratum} | {says + f' ({section})' if i == 0 else ''} | Only focal and Combo "
                             f"loss are monotone on every path ({stratum} object) | monotone paths (exact count) | "
                             f"| {c9[0].paths[stratum]} paths | | | | no training | | **{verdict}** | |")
            continue
        mine = [v for v in verdicts if claim_key(v.claim.id) == key]
        for i, v in enumerate(mine):
            c, t = v.claim, v.test
            metric = metric_label(c)
            measured = f"{_num(t.estimate)} [{_num(t.low)}, {_num(t.high)}]" if t else ""
            seeds = "" if math.isnan(v.seeds_needed) else "inf" if math.isinf(v.seeds_needed) else \
                f"{v.seeds_needed:.0f}"
            verdict = f"**{verdict_label(v)}**" + (f": {v.note}" if v.verdict == "not evaluable" else "") \
                + (" (claim file changed after runs)" if v.changed_after_runs else "")
            lines.append(f"| {c.id} | {says + f' ({section})' if i == 0 else ''} | {c.claim} | {metric} | "
                         f"{'?' if math.isnan(v.margin) else f'{v.margin:.3g}'} | "
                         f"{v.n_cases} x {v.candidate_runs}/{v.baseline_runs} | {levels(v)} | {measured} | "
                         f"{'' if math.isnan(v.p_holm) else f'{v.p_holm:.2g}'} | "
                         f"{v.converged_candidate}/{v.converged_baseline} | {seeds} | {verdict} | "
                         f"{f'{claim_seconds[key] / 60:.0f} min' if i == 0 and claim_seconds[key] else ''} |")
    if c9:
        lines += ["", "C9 (Figure 9) per object size, on the paths of `ctbench loss-curves` (no training):", "",
                  figure9_markdown(c9).rstrip("\n")]
    lines += ["", verdict_rule(family), "",
              "Commands of each claim (`ctbench train -m experiment=claims/NAME` runs the same jobs one at a time):", ""]
    for key, (_, _, experiments) in CLAIMS.items():
        if key not in selected:
            continue
        cmds = [f"`ctbench train -m experiment=claims/{e}`" for e in experiments] or ["`ctbench loss-curves DIR`"]
        if key in ("C3", "C15"):
            cmds.append("per CRF setting `ctbench eval ckpt_path=RUN/checkpoints/best.ckpt postprocess=crf split=val "
                        "crf.bilateral_weight=W crf.bilateral_sigma=S`, then the test `postprocess=null` and "
                        "`postprocess=crf` with the chosen W, S")
        if set(experiments) & set(LR_EXPERIMENTS):
            cmds.insert(0, f"per loss arm `seed=0 {LR_KEY}=R` for R in the grid, then seeds 1, 2 at the chosen R")
        lines.append(f"- {key}: {', then '.join(cmds)}")
    lines += choice_lines(args.study_dir)
    folder = doc.with_suffix("")
    if figures:
        lines += ["", f"Figures (copied to `{folder.name}/`): per case, the candidate's value (y) against the "
                  "baseline's (x), seed means; above the grey diagonal the candidate is higher.", ""]
        folder.mkdir(parents=True, exist_ok=True)
        for claim_id, path in figures.items():
            shutil.copyfile(path, folder / path.name)
            lines.append(f"![{claim_id}]({folder.name}/{path.name})")
    if extra:
        lines += ["", *extra]
    text = "\n".join(lines) + "\n"
    begin, end = DOC_BEGIN, DOC_END
    old = doc.read_text() if doc.is_file() else f"# Survey reproduction\n\n{begin}\n{end}\n"
    if begin not in old:
        old += f"\n{begin}\n{end}\n"
    head, rest = old.split(begin, 1)
    atomic_write_text(doc, f"{head}{begin}\n{text}{end}{rest.split(end, 1)[1]}")


def prune_figures(folder: Path, shown: Sequence[str], drawn: set[str]) -> None:
    """Remove the figures in ``folder`` of the ``shown`` claims that this report did not draw (their runs were
    removed, e.g. to be trained at more epochs): a stale picture would stand beside a *not evaluable* verdict.
    The figures of claims not shown stay."""
    for claim_id in shown:
        for name in (f"{claim_id}.png", f"learning_curves_{claim_id}.png"):
            if name not in drawn:
                (folder / name).unlink(missing_ok=True)


def report(args: argparse.Namespace, selected: Sequence[str], whole: Sequence[Job] = ()) -> Path:
    """Verdicts of every claim file on the complete runs, claims.md/.csv (the ``selected`` claims shown),
    C9, the figures and the doc section with what is left of the ``whole`` study's jobs; returns the doc."""
    from ctbench.reports.claims import evaluate_claims, load_claims, print_verdicts, write_claims
    from ctbench.reports.collect import collect, find_run_dirs
    from ctbench.reports.figure9 import figure9_table
    from ctbench.reports.learning_curves import (
        cascade_survey_terms,
        learning_curve_figures,
        learning_curve_lines,
    )
    from ctbench.reports.volume_ratio import volume_ratio_lines

    study_dir: Path = args.study_dir
    report_dir = study_dir / "report"
    claims = load_claims(CLAIMS_DIR)  # the family: every claim file, whatever --only selects
    shown = [c.id for c in claims if claim_key(c.id) in selected]
    runs, failed = collect([study_dir]) if study_dir.is_dir() and find_run_dirs(study_dir) else ([], [])
    runs = [r for r in runs if report_dir not in r.path.parents]
    verdicts = evaluate_claims(claims, runs)
    write_claims(report_dir, verdicts, [str(study_dir)], shown)
    print_verdicts(verdicts, shown)
    c9: list[Any] = []
    curves = study_dir / "c9_loss_curves"
    if "C9" in selected and (curves / "loss_monotone.csv").is_file():
        c9 = figure9_table(curves)
    figures = claim_figures([c for c in claims if c.id in shown], runs, report_dir / "figures")
    if "C9" in selected and (curves / "loss_curves.png").is_file():
        figures = {"C9-loss-curves": curves / "loss_curves.png", **figures}
    times = _times(study_dir)
    left = time_left([what_is_left(job, whole, times, study_dir / "logs") for job in whole], 2)
    doc = Path(args.doc) if args.doc else report_dir / "survey-reproduction.md"
    curves_by_claim = learning_curve_figures([c for c in claims if c.id in shown], runs, report_dir / "learning_curves")
    extra = learning_curve_lines(curves_by_claim, doc.with_suffix(""))
    if "C4" in selected:
        extra += ["", *cascade_survey_terms(claims, runs)]
    extra += family_sensitivity(claims, runs, verdicts, shown)
    checks_dir = epoch_check_dir(study_dir)
    checks = collect([checks_dir])[0] if checks_dir.is_dir() and find_run_dirs(checks_dir) else []
    extra += epoch_sensitivity(claims, runs, verdicts, shown, checks, checks_dir)
    checked = [run.path for run in runs]
    for variant in LOSS_VARIANTS:
        variant_dir = variant.dir(study_dir)
        variant_runs = collect([variant_dir])[0] if variant_dir.is_dir() and find_run_dirs(variant_dir) else []
        extra += variant_sensitivity(claims, runs, verdicts, shown, variant_runs, variant_dir, variant)
        checked += [run.path for run in variant_runs]
    extra += volume_ratio_lines(checked, study_dir)
    write_doc(doc, verdicts, c9, figures, times, args, selected, extra, left)
    drawn = {p.name for p in (*figures.values(), *curves_by_claim.values())}
    for folder in (doc.with_suffix(""), report_dir / "figures", report_dir / "learning_curves"):
        prune_figures(folder, shown, drawn)
    print(f"[study] {len(runs)} complete run(s), {len(failed)} failed or unfinished; wrote {doc} and "
          f"{report_dir / 'claims.md'}", flush=True)
    return doc


def run_cli(args: argparse.Namespace) -> int:
    """``ctbench study run|report [study=cpu|full] [--only C..] [--jobs N] [--srun] [--deadline T] [--doc FILE]
    [--dry-run]``."""
    preset = args.preset.removeprefix("study=")
    if preset not in PRESETS:
        raise CTBenchError(f"{args.preset}: give study=cpu or study=full (a preset of configs/study/)", exit_code=2)
    unknown = [c for c in args.only or () if c not in CLAIMS]
    if unknown:
        raise CTBenchError(f"--only {' '.join(unknown)}: unknown claim(s); choose from {', '.join(CLAIMS)}", exit_code=2)
    if args.jobs < 1:
        raise CTBenchError(f"--jobs {args.jobs}: give 1 or more jobs side by side", exit_code=2)
    deadline = parse_deadline(args.deadline) if getattr(args, "deadline", None) else None
    args.study = preset
    args.study_dir = Path("multirun") / ("claims" if preset == "cpu" else "claims_full")
    selected = args.only or list(CLAIMS)
    start = time.perf_counter()
    jobs = plan(selected, preset) if args.action == "run" or args.dry_run else []
    # a report judges every claim file: no run of any claim may stand for a run the preset no longer describes
    whole = jobs if jobs and set(selected) == set(CLAIMS) else [] if jobs else plan(list(CLAIMS), preset)
    stale = finished_with_another_config(jobs if jobs else whole)
    if stale:
        for line in stale:
            print(f"[study] {line}", flush=True)
        raise CTBenchError(f"{len(stale)} complete run folder(s) of the study hold another run than the study asks "
                           f"for now (above): move them out of {args.study_dir} (or delete them) and "
                           "rerun; `ctbench study run` trains them again", exit_code=2)
    if args.dry_run:
        times = _times(args.study_dir)
        print(f"[study] {len(jobs)} jobs for {', '.join(selected)} in {args.study_dir}")
        left = []
        for job in jobs:
            after = f"  (after {', '.join(d.name for d in job.after)})" if job.after else ""
            state = what_is_left(job, jobs, times, args.study_dir / "logs")
            left.append(state)
            epochs = f"  ({job.composed[0].trainer.max_epochs} epochs)" if job.composed is not None else ""
            print(f"{','.join(sorted(job.claims)):>8}  ctbench {' '.join(job.command('ctbench', args.srun)[1:])}"
                  f"{epochs}{f'  [{job.note}]' if job.note else ''}  [{state[0]}]{after}")
        print(f"[study] {time_left(left, args.jobs)}")
        return 0
    if args.action == "run":
        args.study_dir.mkdir(parents=True, exist_ok=True)
        print(f"[study] {len(jobs)} jobs for {', '.join(selected)} in {args.study_dir}", flush=True)
        run_jobs(jobs, args.jobs, args.srun, args.study_dir, args.study_dir / "logs", deadline)
        if "C9" in selected:
            curves = args.study_dir / "c9_loss_curves"
            if not (curves / "loss_monotone.csv").is_file():  # like a complete run, not computed again
                subprocess.run([ctbench_executable(), "loss-curves", str(curves)], check=True)
    report(args, selected, whole or plan(list(CLAIMS), preset))
    failed = [j.name for j in jobs if j.status == "failed"]
    deferred = [j.name for j in jobs if j.status == "deferred"]
    held = [j.name for j in jobs if j.status == "held"]
    busy = [j.name for j in jobs if j.status == "busy"]
    print(f"[study] {(time.perf_counter() - start) / 60:.1f} min; {len(failed)} failed job(s)"
          + (f": {', '.join(failed)}" if failed else "")
          + (f"; {len(held)} held (above: an arm's seed 0 not converged, or every claim they serve not evaluable): {', '.join(held)}" if held else "")
          + (f"; {len(deferred)} not started before the deadline (rerun the same command to go on): "
             f"{', '.join(deferred)}" if deferred else "")
          + (f"; {len(busy)} running in another process, and the jobs that wait for them (rerun when it ends): "
             f"{', '.join(busy)}" if busy else ""), flush=True)
    return 1 if failed else 0
