"""The study's learning curves, and the cascade's liver Dice and seconds per volume in the survey's terms.

:func:`learning_curve_figures` draws, from each run's ``summary.json`` ``convergence.history`` (validation
mean Dice, the checkpoint-selection metric, per epoch), one figure per distinct pair of a claim's
candidate and baseline runs: claims judged on the same runs (C4a, C4b and C4c are the same six) share one
figure, so one curve is never drawn twice and a claim's figure is exactly the runs its verdict reads. A run
is one thin line (a seed), candidate and baseline in two colours, its convergence verdict in the legend;
the shaded band is the last 20 % of epochs that the convergence rule compares with the best before
(:mod:`ctbench.reports.convergence`; Isensee et al. 2024 on training to convergence, Bouthillier et al.
2021 on seeds as a variance source). ``report/progress.png`` has the loss and learning rate of one run;
this is the side-by-side view a claim needs. :func:`learning_curve_lines` copies them beside a document.

:func:`cascade_survey_terms` is C4c as the survey states it (section 3.1: Christ et al. 2016 "achieves
Dice score over 94% for liver with computation time below 100 second per CT volume"): per run of the
cascade and of the U-Net, the liver Dice (mean over the test cases) and the prediction's wall seconds per
volume (``summary.json`` ``predict_seconds_mean``) beside 0.94 and 100 s.
"""

from __future__ import annotations

import math
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctbench.reports.claims import Claim, sides
from ctbench.reports.collect import Run, nanmean, nanstd
from ctbench.reports.render import md_table

SIDES = ("candidate", "baseline")
COLOURS = {"candidate": "tab:orange", "baseline": "tab:blue"}
#: Christ et al. 2016 as the survey quotes it (section 3.1): liver Dice over 0.94, under 100 s per CT volume.
SURVEY_LIVER_DICE = 0.94
SURVEY_SECONDS = 100.0
#: The claim file whose runs :func:`cascade_survey_terms` reads (its id up to the first ``-``).
CASCADE_CLAIM = "C4c"


@dataclass(frozen=True)
class Curve:
    """One run's validation curve in a claim's figure."""

    side: str
    run: str
    label: str
    points: tuple[tuple[int, float], ...]
    #: the last 20 % of epochs, ``(last_from_epoch, epochs)`` of the convergence block
    window: tuple[int, int] | None


def arm_name(claim: Claim, side: str) -> str:
    """The selectors that tell this side from the other (``cascaded_fcn``), else the side's name."""
    own, other = (claim.candidate, claim.baseline) if side == "candidate" else (claim.baseline, claim.candidate)
    return " ".join(v for k, v in own.items() if other.get(k) != v) or side


def _convergence(run: Run) -> dict[str, Any]:
    block = run.summary.get("convergence")
    return block if isinstance(block, dict) else {}


def _window(block: dict[str, Any]) -> tuple[int, int] | None:
    start, epochs = block.get("last_from_epoch"), block.get("epochs")
    return (int(start), int(epochs)) if isinstance(start, int) and isinstance(epochs, int) else None


def claim_curves(claim: Claim, runs: Sequence[Run]) -> list[Curve]:
    """The curves of the claim's candidate runs, then its baseline runs, each side in seed order; runs
    without a ``convergence.history`` (trained before it was recorded) are left out."""
    curves = []
    for side, members in zip(SIDES, sides(claim, runs), strict=True):
        for run in sorted(members, key=lambda r: (str(r.attribute("seed")), r.name)):
            block = _convergence(run)
            history = block.get("history")
            if not isinstance(history, list) or not history:
                continue
            points = tuple((int(e), float(v)) for e, v in history)
            label = f"{arm_name(claim, side)} seed {run.attribute('seed')}: {block.get('verdict', 'no verdict')}"
            curves.append(Curve(side, run.name, label, points, _window(block)))
    return curves


def _draw(curves: Sequence[Curve], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.3), dpi=100)
    windows = {side: {c.window for c in curves if c.side == side and c.window} for side in SIDES}
    shared = windows["candidate"] == windows["baseline"]
    for side in SIDES[:1] if shared else SIDES:
        for start, epochs in sorted(windows[side]):
            ax.axvspan(start - 0.5, epochs - 0.5, color="0.5" if shared else COLOURS[side], alpha=0.12, lw=0)
    for curve in curves:
        epochs, values = zip(*curve.points, strict=True)
        ax.plot(epochs, values, color=COLOURS[curve.side], lw=0.9, marker=".", ms=3, alpha=0.85,
                label=f"{curve.side}: {curve.label}")
    ax.set_xlabel("epoch (shaded: the last 20 %, judged for convergence)", fontsize=7)
    ax.set_ylabel("validation mean Dice", fontsize=7)
    ax.set_title(title, fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=5.5, loc="lower right", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def learning_curve_figures(claims: Sequence[Claim], runs: Sequence[Run], out_dir: Path) -> dict[str, Path]:
    """``out_dir/learning_curves_ID.png`` per distinct set of a claim's runs (``ID``: the first claim of
    ``claims`` drawn on them); returns claim id -> its figure (claims on the same runs map to one file;
    a claim one of whose sides has no run with a history has none)."""
    drawn: dict[tuple[tuple[str, str], ...], Path] = {}
    figures: dict[str, Path] = {}
    for claim in claims:
        curves = claim_curves(claim, runs)
        if {c.side for c in curves} != set(SIDES):
            continue
        key = tuple((c.side, c.run) for c in curves)
        if key not in drawn:
            out_dir.mkdir(parents=True, exist_ok=True)
            sharing = [c.id for c in claims if tuple((x.side, x.run) for x in claim_curves(c, runs)) == key]
            title = textwrap.fill(", ".join(sharing), 90) + f"\n{arm_name(claim, 'candidate')} vs " \
                f"{arm_name(claim, 'baseline')}: validation mean Dice per epoch, one line per run"
            drawn[key] = out_dir / f"learning_curves_{claim.id}.png"
            _draw(curves, title, drawn[key])
        figures[claim.id] = drawn[key]
    return figures


def learning_curve_lines(figures: dict[str, Path], folder: Path) -> list[str]:
    """Markdown lines for a document beside ``folder``: each distinct figure of :func:`learning_curve_figures`
    copied into ``folder`` once, captioned with the claims it shows; [] without figures."""
    if not figures:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["Learning curves: validation mean Dice per epoch of every run (seed) of a claim's candidate and "
             "baseline, each run's convergence verdict in the legend, the last 20 % of epochs (what the "
             "convergence rule judges) shaded; claims judged on the same runs share one figure.", ""]
    for path in dict.fromkeys(figures.values()):
        shutil.copyfile(path, folder / path.name)
        lines.append(f"![{', '.join(k for k, v in figures.items() if v == path)}]({folder.name}/{path.name})")
    return lines


def _fmt(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _seconds(run: Run) -> float:
    value = run.summary.get("predict_seconds_mean")
    return float(value) if isinstance(value, (int, float)) else math.nan


def cascade_survey_terms(claims: Sequence[Claim], runs: Sequence[Run]) -> list[str]:
    """Markdown lines: C4c's runs (cascade, then U-Net) with liver Dice and predict seconds per volume
    beside the survey's 0.94 / 100 s, one row per run and one per arm (mean, and SD over seeds); [] when no
    claim file is C4c."""
    claim = next((c for c in claims if c.id.split("-")[0] == CASCADE_CLAIM), None)
    if claim is None:
        return []
    rows = [["survey (Christ et al. 2016, section 3.1)", "", f"> {SURVEY_LIVER_DICE:.2f}",
             f"< {SURVEY_SECONDS:.0f}", "", ""]]
    hardware: set[str] = set()
    n_cases: set[int] = set()
    for side, members in zip(SIDES, sides(claim, runs), strict=True):
        name = arm_name(claim, side)
        members = sorted(members, key=lambda r: (str(r.attribute("seed")), r.name))
        dice = [r.class_mean("dice", "liver") for r in members]
        seconds = [_seconds(r) for r in members]
        for run, d, s in zip(members, dice, seconds, strict=True):
            rows.append([name, str(run.attribute("seed")), _fmt(d, 3), _fmt(s, 1),
                         str(_convergence(run).get("verdict", "no record")), ""])
            hardware.update([str(run.summary["predict_hardware"])] if run.summary.get("predict_hardware") else [])
            n_cases.add(len(run.cases))
        if not members:
            rows.append([name, "no run yet", "", "", "", ""])
            continue
        mean_d, mean_s = nanmean(dice), nanmean(seconds)
        sd_d, sd_s = nanstd(dice), nanstd(seconds)
        meets = "n/a" if math.isnan(mean_d) or math.isnan(mean_s) else \
            "yes" if mean_d > SURVEY_LIVER_DICE and mean_s < SURVEY_SECONDS else "no"
        rows.append([f"**{name}, mean over {len(members)} run(s)**", "",
                     _fmt(mean_d, 3) + ("" if math.isnan(sd_d) else f" ± {sd_d:.3f}"),
                     _fmt(mean_s, 1) + ("" if math.isnan(sd_s) else f" ± {sd_s:.1f}"), "", f"**{meets}**"])
    measured_on = "; ".join(sorted(hardware)) or "not recorded (runs trained before `predict_seconds`)"
    cases = "/".join(str(n) for n in sorted(n_cases))
    caption = (f"**C4c in the survey's own terms.** Liver Dice is the mean over the {cases + ' ' if cases else ''}"
               "test cases of a run (in "
               "each label file's own grid); *predict s / volume* is `summary.json` `predict_seconds_mean`, the "
               "wall time per test volume of the prediction (sliding window through both stages for the cascade, "
               "back onto the label file's grid, post-processing; not loading, not the metrics), measured on "
               f"{measured_on}: one CPU thread per job with `study=cpu` (OMP_NUM_THREADS=1, two jobs side by "
               "side). ± is the SD over seeds. The survey's figure is on real CT volumes and names no hardware. "
               f"*Meets*: the arm's mean Dice > {SURVEY_LIVER_DICE} and mean time < {SURVEY_SECONDS:.0f} s.")
    return [caption, "",
            *md_table(["arm", "seed", "liver Dice", "predict s / volume", "convergence",
                       f"meets {SURVEY_LIVER_DICE} / {SURVEY_SECONDS:.0f} s"], rows)]
