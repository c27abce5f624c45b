"""Claims declared before the runs, and a verdict for each: ``ctbench report RUNS --claims FILE_OR_DIR``.

A claim is a small YAML file (a folder holds one per file, read in name order)::

    id: C7-focal-lesion
    claim: Focal loss segments small lesions better than Dice loss
    source: survey section 4.5
    where: {model: unet}        # selectors both sides share (optional)
    candidate: {loss: focal}    # selectors of the runs the claim is about
    baseline: {loss: dice}      # selectors of the runs it is compared with
    metric: lesion_f1           # any numeric per_case.csv column, or dice iou nsd ... hd95 assd detection
    class: lesion               # optional: one class; or `classes: [liver, spleen, kidney]`, their mean
    margin: 0.05                # optional: the smallest effect of interest, in the metric's unit
    statistic: mean             # optional: mean (default) or seed_sd (see below)
    expect: higher              # the candidate's value is higher (or lower) than the baseline's

A selector key is ``model``, ``loss``, any scalar field of ``summary.json`` (``dims``, ``dataset``,
``seed``, ...) or any Hydra override or config key of the run (``postprocess``, ``study.tag``, ...); a run
belongs to a side when every selector matches. Without ``class``/``classes`` a case's value is the mean
over the run's ``mean_over_classes``. ``statistic: seed_sd`` compares, per case, the standard deviation of
the metric across each side's runs (a stability claim).

``compare: strata`` compares two ``per_case.csv`` columns of the same runs (a within-run claim)::

    id: C24a-unet-small-lesions
    claim: A 2D U-Net misses small lesions more often than large ones
    compare: strata
    where: {model: unet, loss: dice_ce}   # the runs (3+ seeds)
    candidate: lesion_recall_small        # a column ...
    baseline: lesion_recall_large         # ... and the column it is compared with, no `metric`
    class: lesion
    expect: lower
    margin: 0.05

Each run's per-case difference (candidate column minus baseline column) is paired by case and seed and
judged by the same interval and rule against a baseline of zeros with no seed variance (the seeds' part
of the standard error is the spread of the runs' mean differences); the cases are those where both
columns are defined in every run.

The verdict rule (:func:`verdict_rule`, printed under every claims table, docs/report-format.md):

- The **family** is every claim given (a folder: all its files, claims without data included), m claims;
  each interval is a simultaneous ``1 - 0.05/m`` interval and p-values are Holm-adjusted over m.
- Interval and p come from one resampling scheme, :func:`ctbench.reports.statistics.hierarchical_test`:
  a studentized bootstrap that resamples the cases both sides share and, within each side, its runs
  (seeds); the interval excludes 0 only when ``p <= 0.05/m``, so a decisive verdict always has Holm p <= 0.05.
- **reproduced**: the interval excludes 0 on the expected side and the estimate is beyond the margin;
  **contradicted**: the mirror; **no practical difference**: the whole interval inside ``+/- margin``;
  **inconclusive**: otherwise; **not evaluable**: a side has fewer than 3 runs, a run did not converge
  (``summary.json`` ``convergence``), the metric is undefined on every pair, or no run matches a side.
- Default margins (:data:`DEFAULT_MARGINS`): organ Dice/IoU/NSD 0.02, lesion-wise metrics 0.05, HD95/ASSD
  one slice of the evaluation grid (the largest ``dataset.preprocessing.spacing`` of the runs).
- **at the floor** (a qualifier, never a verdict of its own): a *no practical difference* on a score in [0, 1]
  (the metrics of :data:`DEFAULT_MARGINS`) whose two sides' means both lie within the margin of 0. Neither side
  scores the target, so the interval could hardly leave ``+/- margin``: the verdict says that neither arm learns
  it here, not that the two would be equal on a target they learn (:func:`at_floor`).

Sources: the margin is the smallest effect size of interest of equivalence testing (Lakens 2017, Soc.
Psychol. Personal. Sci. 8:355; a "no practical difference" interval is the two one-sided tests' rule);
seeds are a variance source of the benchmark, not noise to average away (Bouthillier et al. 2021, MLSys);
simultaneous Bonferroni intervals with Holm's step-down p (Holm 1979); the per-claim checks follow
Maier-Hein et al. 2018 (Nat. Commun. 9:5217) on benchmark rankings.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ctbench.atomic import atomic_write_text
from ctbench.errors import CTBenchError
from ctbench.reports.collect import METRICS, NAN_DROPPED, Run, config_list
from ctbench.reports.convergence import VERDICTS as CONVERGENCE_VERDICTS
from ctbench.reports.render import csv_num, fmt_p, md_table
from ctbench.reports.statistics import (
    ALPHA,
    N_RESAMPLES,
    HierarchicalResult,
    hierarchical_test,
    holm,
    seeds_for_power,
)

REQUIRED_KEYS = ("id", "claim", "candidate", "baseline", "metric", "expect")
OPTIONAL_KEYS = ("source", "where", "class", "classes", "statistic", "margin", "compare")
#: ``runs``: two sides of runs, one metric; ``strata``: two per_case columns of the same runs.
COMPARES = ("runs", "strata")
STATISTICS = ("mean", "seed_sd")
VERDICTS = ("reproduced", "contradicted", "no practical difference", "inconclusive", "not evaluable")
#: Runs (seeds) each side needs before a claim is evaluable.
MIN_RUNS = 3
#: Power at the margin for which ``seeds_for_80_power`` is computed.
POWER = 0.8
#: Smallest effect of interest when a claim file declares no ``margin``, in the metric's unit.
DEFAULT_MARGINS: dict[str, float] = {
    "dice": 0.02, "iou": 0.02, "nsd": 0.02, "sensitivity": 0.02, "precision": 0.02,
    "detection": 0.05, "lesion_recall": 0.05, "lesion_precision": 0.05, "lesion_f1": 0.05, "lesion_dice": 0.05,
    "lesion_f1_iou50": 0.05, "lesion_recall_small": 0.05, "lesion_recall_medium": 0.05,
    "lesion_recall_large": 0.05,
}
#: Distance metrics: their default margin is one slice of the evaluation grid (mm).
DISTANCE_METRICS = ("hd95", "assd", "hd95_nan_dropped", "assd_nan_dropped")
_COLUMN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Claim:
    """One declared claim: the candidate's ``metric`` (mean over ``classes``, or the foreground mean) is
    ``expect`` (``higher``/``lower``) than the baseline's by more than ``margin``."""

    id: str
    claim: str
    source: str
    candidate: dict[str, str]
    baseline: dict[str, str]
    metric: str
    classes: tuple[str, ...] | None
    expect: str
    path: Path
    statistic: str = "mean"
    margin: float | None = None
    sha256: str = ""
    #: when the claim file last changed (its last commit if git tracks it unmodified, else its mtime)
    last_change: float = math.nan
    #: ``compare: strata``: the candidate's and the baseline's per_case column (``metric`` is the first;
    #: ``candidate`` and ``baseline`` are both the ``where`` selectors), else None
    columns: tuple[str, str] | None = None


@dataclass
class Verdict:
    """A claim's verdict and every number behind it (``test`` None where nothing could be compared)."""

    claim: Claim
    verdict: str
    note: str
    candidate_runs: int
    baseline_runs: int
    margin: float
    family_size: int
    test: HierarchicalResult | None = None
    p_holm: float = math.nan
    seeds_needed: float = math.nan
    converged_candidate: str = "unknown"
    converged_baseline: str = "unknown"
    changed_after_runs: bool = False
    #: HD95/ASSD: case x class x run cells of the pairs that are misses (counted at the image diagonal)
    misses_candidate: str = ""
    misses_baseline: str = ""
    #: the runs of each side (their ``report/progress.png`` is the learning curve)
    paths: tuple[tuple[Path, ...], tuple[Path, ...]] = ((), ())
    #: each side's mean over its runs and the paired cases (``seed_sd``: of the per-case SDs; ``strata``: of
    #: each column): the level a difference starts from (a lesion Dice of 0.004 against 0.000 is a floor)
    candidate_mean: float = math.nan
    baseline_mean: float = math.nan

    @property
    def n_cases(self) -> int:
        return self.test.n_cases if self.test else 0


def _selector_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _selectors(path: Path, data: Mapping[str, Any], key: str) -> dict[str, str]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping) or any(isinstance(v, (Mapping, list)) for v in value.values()):
        raise CTBenchError(f"{path}: `{key}` must map selector keys to single values, e.g. {{loss: focal}}")
    return {str(k): _selector_text(v) for k, v in value.items()}


def _classes(path: Path, data: Mapping[str, Any]) -> tuple[str, ...] | None:
    if "class" in data and "classes" in data:
        raise CTBenchError(f"{path}: give `class` (one class) or `classes` (a list), not both")
    if "classes" in data:
        value = data["classes"]
        if not isinstance(value, list) or not value or any(isinstance(v, (Mapping, list)) for v in value):
            raise CTBenchError(f"{path}: `classes` must be a list of class names, e.g. [liver, spleen, kidney]")
        return tuple(str(v) for v in value)
    cls = data.get("class")
    return None if cls in (None, "", "mean") else (str(cls),)


def _margin(path: Path, data: Mapping[str, Any], metric: str) -> float | None:
    if data.get("margin") is None:
        if metric not in DEFAULT_MARGINS and metric not in DISTANCE_METRICS:
            raise CTBenchError(f"{path}: metric {metric!r} has no default margin; declare `margin:` (the smallest "
                               "difference that matters, in the metric's unit)")
        return None
    try:
        margin = float(data["margin"])
    except (TypeError, ValueError):
        margin = math.nan
    if not margin > 0 or math.isinf(margin):
        raise CTBenchError(f"{path}: margin {data['margin']!r}: give a number > 0 in the metric's unit")
    return margin


def _column(path: Path, data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not _COLUMN.match(value.lower()):
        raise CTBenchError(f"{path}: with `compare: strata`, `{key}` names a per_case.csv column, e.g. "
                           f"lesion_recall_small, not {str(value)[:40]!r}")
    return value.lower()


def parse_strata_claim(path: Path, data: Mapping[str, Any]) -> Claim:
    """A ``compare: strata`` claim: ``candidate`` and ``baseline`` name two columns of the ``where`` runs."""
    required = tuple(k for k in REQUIRED_KEYS if k != "metric")
    missing = [k for k in required if k not in data]
    if missing or "metric" in data or "statistic" in data:
        problem = f"missing key(s) {', '.join(missing)}" if missing else "no `metric` or `statistic` here"
        raise CTBenchError(f"{path}: {problem}; a `compare: strata` claim has {', '.join(required)} (candidate and "
                           "baseline each name a per_case.csv column) and a `where` selecting the runs")
    columns = (_column(path, data, "candidate"), _column(path, data, "baseline"))
    if columns[0] == columns[1]:
        raise CTBenchError(f"{path}: candidate and baseline name the same column {columns[0]}; name two strata")
    expect = str(data["expect"]).lower()
    if expect not in ("higher", "lower"):
        raise CTBenchError(f"{path}: expect {data['expect']!r}: write `higher` or `lower` (candidate vs baseline)")
    where = _selectors(path, data, "where")
    return Claim(str(data["id"]), str(data["claim"]), str(data.get("source") or ""), where, dict(where), columns[0],
                 _classes(path, data), expect, path, "mean", _margin(path, data, columns[0]), columns=columns)


def parse_claim(path: Path, data: Any) -> Claim:
    """Check one claim file's content; a :class:`CTBenchError` names the file and the fix."""
    if not isinstance(data, Mapping):
        raise CTBenchError(f"{path}: a claim file holds one mapping with keys {', '.join(REQUIRED_KEYS)}")
    compare = str(data.get("compare") or "runs").lower()
    if compare not in COMPARES:
        raise CTBenchError(f"{path}: compare {data['compare']!r}: write `runs` (two sides of runs, the default) or "
                           "`strata` (two per_case columns of the same runs)")
    unknown = [str(k) for k in data if k not in REQUIRED_KEYS + OPTIONAL_KEYS]
    if compare == "strata" and not unknown:
        return parse_strata_claim(path, data)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing or unknown:
        problem = f"missing key(s) {', '.join(missing)}" if missing else f"unknown key(s) {', '.join(unknown)}"
        raise CTBenchError(f"{path}: {problem}; a claim has {', '.join(REQUIRED_KEYS)} "
                           f"and optionally {', '.join(OPTIONAL_KEYS)}")
    metric = str(data["metric"]).lower()
    if metric not in METRICS and not _COLUMN.match(metric):
        raise CTBenchError(f"{path}: metric {data['metric']!r} is not a per_case.csv column name; choose one of "
                           f"{', '.join(METRICS)} or a numeric column such as lesion_f1")
    expect = str(data["expect"]).lower()
    if expect not in ("higher", "lower"):
        raise CTBenchError(f"{path}: expect {data['expect']!r}: write `higher` or `lower` (candidate vs baseline)")
    where = _selectors(path, data, "where")
    candidate = {**where, **_selectors(path, data, "candidate")}
    baseline = {**where, **_selectors(path, data, "baseline")}
    if candidate == baseline:
        raise CTBenchError(f"{path}: candidate and baseline select the same runs; make their selectors differ")
    statistic = str(data.get("statistic") or "mean").lower()
    if statistic not in STATISTICS:
        raise CTBenchError(f"{path}: statistic {data['statistic']!r} unknown, choose one of {', '.join(STATISTICS)}")
    return Claim(str(data["id"]), str(data["claim"]), str(data.get("source") or ""), candidate, baseline,
                 metric, _classes(path, data), expect, path, statistic, _margin(path, data, metric))


def last_change(path: Path) -> float:
    """When ``path`` last changed (seconds since the epoch): its last commit when git tracks it and it has
    no uncommitted change (a checkout resets mtimes), else its modification time."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args, "--", path.name], cwd=path.parent, capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()

        if not git("status", "--porcelain") and (committed := git("log", "-1", "--format=%ct")):
            return float(committed)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return path.stat().st_mtime


def load_claims(source: Path) -> list[Claim]:
    """Claims of one YAML file or of every ``*.yaml``/``*.yml`` file in a folder (name order), each with
    its file's SHA-256 and last change."""
    from ctbench.safe_yaml import load_yaml_text

    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise CTBenchError(f"--claims {source}: no *.yaml claim file in that folder")
    elif source.is_file():
        files = [source]
    else:
        raise CTBenchError(f"--claims {source}: does not exist; give a claim YAML file or a folder of them")
    claims = []
    for path in files:
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CTBenchError(f"{path}: not readable ({str(err).splitlines()[0]})") from None
        claim = parse_claim(path, load_yaml_text(text, str(path)))  # aliases refused, size and depth capped
        claims.append(Claim(**{**claim.__dict__, "sha256": hashlib.sha256(raw).hexdigest(),
                               "last_change": last_change(path)}))
    ids = [c.id for c in claims]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CTBenchError(f"--claims {source}: claim id(s) {', '.join(duplicates)} used twice; ids must be unique")
    return claims


def matches(run: Run, selectors: Mapping[str, str]) -> bool:
    """Whether ``run`` belongs to the side that ``selectors`` describe."""
    return all(run.attribute(key) == value for key, value in selectors.items())


def sides(claim: Claim, runs: Sequence[Run]) -> tuple[list[Run], list[Run]]:
    """The candidate's and the baseline's runs."""
    return ([r for r in runs if matches(r, claim.candidate)], [r for r in runs if matches(r, claim.baseline)])


def case_values(run: Run, claim: Claim, column: str | None = None) -> dict[str, float]:
    """Per case, the run's value of the claim's metric (or of ``column``): the mean over the claim's classes
    (NaN cells left out), or over the run's ``mean_over_classes``."""
    table = run.values.get(column or claim.metric, {})
    classes = claim.classes or tuple(run.mean_over)
    out = {}
    for case in run.cases:
        vals = [table[(case, c)] for c in classes if (case, c) in table and not math.isnan(table[(case, c)])]
        out[case] = math.fsum(vals) / len(vals) if vals else math.nan
    return out


def arm_values(claim: Claim, candidate: Sequence[Run], baseline: Sequence[Run]
               ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The cases every run of both sides scored with a defined value, and each side's ``(runs, cases)``
    values on them (``statistic: seed_sd``: one row, each case's SD over the side's runs; ``compare:
    strata``: the candidate column of the candidate runs, the baseline column of the baseline runs)."""
    columns = claim.columns or (claim.metric, claim.metric)
    tables = [[case_values(r, claim, column) for r in side] for side, column in zip((candidate, baseline), columns,
                                                                                    strict=True)]
    cases = sorted(set.intersection(*(set(k for k, v in t.items() if not math.isnan(v))
                                      for side in tables for t in side)))
    arrays = [np.array([[t[c] for c in cases] for t in side], dtype=np.float64).reshape(len(side), len(cases))
              for side in tables]
    if claim.statistic == "seed_sd":
        arrays = [a.std(axis=0, ddof=1)[None, :] if a.shape[0] > 1 else np.full((1, len(cases)), np.nan)
                  for a in arrays]
    return cases, arrays[0], arrays[1]


def resolve_margin(claim: Claim, runs: Sequence[Run]) -> tuple[float, str]:
    """The claim's margin and, for a default taken from the runs, how it was found (NaN + why when not)."""
    if claim.margin is not None:
        return claim.margin, ""
    if claim.metric in DEFAULT_MARGINS:
        return DEFAULT_MARGINS[claim.metric], ""
    slices = {max(s) for r in runs if (s := config_list(r.path, "dataset.preprocessing.spacing"))}
    if not slices:
        return math.nan, "no evaluation spacing in the runs' configs: declare `margin:` in mm"
    return max(slices), f"margin {max(slices):g} mm = one slice of the evaluation grid"


def judge(test: HierarchicalResult, expect: str, margin: float) -> str:
    """The verdict from the interval, the estimate and the margin (module docstring)."""
    if math.isnan(test.low):
        return "inconclusive"
    if test.low > 0 or test.high < 0:
        higher = test.low > 0
        if abs(test.estimate) > margin:
            return "reproduced" if higher == (expect == "higher") else "contradicted"
    if -margin < test.low and test.high < margin:
        return "no practical difference"
    return "inconclusive"


def training_convergence(run: Run) -> Mapping[str, Any] | None:
    """An evaluation run's convergence: the record of the training run whose checkpoint it tested (the run
    folder ``checkpoint`` names, or the folder of that name beside the evaluation's, as ``ctbench study``
    lays them out); None when neither holds a readable record. Only the verdict string is used."""
    checkpoint = run.summary.get("checkpoint")
    if not isinstance(checkpoint, str) or not checkpoint.endswith(".ckpt"):
        return None
    trained = Path(checkpoint).parent.parent
    for folder in (trained, run.path.parent / trained.name):
        try:
            record = json.loads((folder / "report" / "summary.json").read_text()).get("convergence")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(record, Mapping) and record.get("verdict") in CONVERGENCE_VERDICTS:
            return {"verdict": record["verdict"]}
    return None


def convergence(runs: Sequence[Run]) -> tuple[str, list[str]]:
    """``true`` when every run's ``summary.json`` ``convergence.verdict`` is ``converged``, ``false`` when
    one says otherwise, ``unknown`` when one has no record; and a phrase per run that is not converged."""
    problems = []
    state = "true"
    for run in runs:
        record = run.summary.get("convergence") or training_convergence(run)
        if not isinstance(record, Mapping) or "verdict" not in record:
            problems.append(f"{run.name}: no convergence record")
            state = "unknown" if state == "true" else state
        elif record["verdict"] != "converged":
            problems.append(f"{run.name}: {record['verdict']}")
            state = "false"
    return state, problems


def misses(claim: Claim, runs: Sequence[Run], cases: Sequence[str]) -> str:
    """For HD95/ASSD: how many of the side's (case, class, run) cells on ``cases`` are a miss (no distance,
    counted at the image diagonal), as ``misses/cells``; "" for another metric."""
    dropped = f"{claim.metric}{NAN_DROPPED}"
    if claim.metric not in DISTANCE_METRICS[:2]:
        return ""
    cells = missed = 0
    for run in runs:
        classes = claim.classes or tuple(run.mean_over)
        for key in ((case, cls) for case in cases for cls in classes):
            if key in run.values.get(claim.metric, {}):
                cells += 1
                missed += math.isnan(run.values.get(dropped, {}).get(key, 0.0))
    return f"{missed}/{cells}"


def run_started(run: Run) -> float:
    """When a run started: its Hydra config's modification time (written at the start), else its summary's."""
    for name in (".hydra/config.yaml", "resolved_config.yaml", "report/summary.json", "summary.json"):
        if (run.path / name).is_file():
            return (run.path / name).stat().st_mtime
    return math.inf


def at_floor(v: Verdict) -> bool:
    """Whether ``v`` is a *no practical difference* at the floor (module docstring): a mean of a score in [0, 1]
    with both sides' means within the margin of 0."""
    return (v.verdict == "no practical difference" and v.claim.statistic == "mean" and v.claim.columns is None
            and v.claim.metric in DEFAULT_MARGINS and max(v.candidate_mean, v.baseline_mean) <= v.margin)


FLOOR_NOTE = ("at the floor: both sides' means are within the margin of 0, so neither side scores this target; "
              "the verdict does not show that the two would be equal on a target they learn")


def verdict_label(v: Verdict) -> str:
    """The verdict as tables show it: with ``(at the floor)`` where :func:`at_floor`."""
    return f"{v.verdict} (at the floor)" if at_floor(v) else v.verdict


def _judge_one(claim: Claim, runs: Sequence[Run], family_size: int, alpha: float, n_resamples: int) -> Verdict:
    candidate, baseline = sides(claim, runs)  # compare: strata: the same runs on both sides
    strata = claim.columns is not None
    every = list({id(r): r for r in (*candidate, *baseline)}.values())
    margin, margin_note = resolve_margin(claim, every)
    verdict = Verdict(claim, "not evaluable", "", len(candidate), len(baseline), margin, family_size,
                      paths=(tuple(r.path for r in candidate), () if strata else tuple(r.path for r in baseline)))
    empty = [f"{name} `{_selection(sel)}`" for name, sel, side in
             (("candidate", claim.candidate, candidate), ("baseline", claim.baseline, baseline)) if not side]
    if empty:
        verdict.note = (f"no complete run matches `{_selection(claim.candidate)}`" if strata
                        else f"no complete run matches {' and '.join(empty)}")
        return verdict
    started = min(run_started(r) for r in every)
    verdict.changed_after_runs = claim.last_change > started
    overlap = set() if strata else {r.name for r in candidate} & {r.name for r in baseline}
    if overlap:
        verdict.note = f"runs on both sides ({', '.join(sorted(overlap))}): make the selectors exclusive"
        return verdict
    columns = claim.columns or (claim.metric,)
    lacking = [r.name for r in every if any(c not in r.values for c in columns)]
    if lacking:
        verdict.note = f"metric {' or '.join(map(repr, columns))} is not in per_case.csv of {', '.join(lacking[:3])}"
        return verdict
    unscored = [c for c in claim.classes or () if not all(c in r.classes for r in every)]
    if unscored:
        verdict.note = f"class(es) {', '.join(unscored)} not scored by every run"
        return verdict
    reasons = []
    if min(len(candidate), len(baseline)) < MIN_RUNS:
        reasons.append(f"{len(candidate)} runs (seeds), {MIN_RUNS} needed" if strata else
                       f"{len(candidate)}/{len(baseline)} runs (seeds) per side, {MIN_RUNS} needed")
    verdict.converged_candidate, problems = convergence(candidate)
    verdict.converged_baseline, more = (verdict.converged_candidate, []) if strata else convergence(baseline)
    if problems or more:
        shown = [*problems, *more]
        reasons.append("not converged (" + "; ".join(shown[:3]) + (f"; {len(shown) - 3} more" if len(shown) > 3
                                                                    else "") + ")")
    cases, a, b = arm_values(claim, candidate, baseline)
    if cases:
        verdict.candidate_mean, verdict.baseline_mean = float(np.mean(a)), float(np.mean(b))
    verdict.misses_candidate, verdict.misses_baseline = misses(claim, candidate, cases), misses(claim, baseline, cases)
    scored = {case for r in every for case in r.cases}
    pairs_note = f"{len(cases)} of {len(scored)} cases paired (the others lack a value in a run)" \
        if cases and len(cases) < len(scored) else ""
    if not cases:
        reasons.append(f"{' - '.join(columns)} undefined on every pair of cases")
    elif claim.statistic == "seed_sd" and min(len(candidate), len(baseline)) < 2:
        reasons.append("statistic seed_sd needs two or more runs per side")
    else:
        # strata: each run's per-case differences against zeros, so cases and seeds are resampled as pairs
        a, b = (a - b, np.zeros_like(b)) if strata else (a, b)
        verdict.test = within_range(hierarchical_test(a, b, level=1 - alpha / family_size, n_resamples=n_resamples),
                                    columns)
        if claim.statistic == "mean" and not math.isnan(margin):
            verdict.seeds_needed = seeds_for_power(verdict.test.case_var, verdict.test.seed_var, len(cases),
                                                   margin, alpha / family_size, POWER)
    if math.isnan(margin):
        reasons.append(margin_note)
    if reasons:
        verdict.note = "; ".join([*reasons, pairs_note] if pairs_note else reasons)
        return verdict
    verdict.verdict = judge(verdict.test, claim.expect, margin)
    verdict.note = "; ".join(n for n in (FLOOR_NOTE if at_floor(verdict) else "", margin_note, pairs_note) if n)
    return verdict


def within_range(test: HierarchicalResult, columns: Sequence[str]) -> HierarchicalResult:
    """``test`` with its interval cut at -1 and 1 when every column compared lies in [0, 1] (the metrics of
    :data:`DEFAULT_MARGINS`): a difference of two such values (or of their seed SDs) cannot leave [-1, 1], so
    the cut interval covers the truth whenever the uncut one does. Where the t floor meets a large seed
    variance (one collapsed seed, 3 seeds a side, a family of 66), the bootstrap-t interval can reach past
    +/-1; the verdict is the same either way (it needs the interval inside +/-margin or beyond 0)."""
    if not all(c in DEFAULT_MARGINS for c in columns) or math.isnan(test.low):
        return test
    return replace(test, low=max(test.low, -1.0), high=min(test.high, 1.0))


def evaluate_claims(claims: Sequence[Claim], runs: Sequence[Run], alpha: float = ALPHA,
                    n_resamples: int = N_RESAMPLES, family_of: Callable[[Claim], str] | None = None,
                    runs_of: Mapping[str, Sequence[Run]] | None = None) -> list[Verdict]:
    """A verdict per claim; the family is ``claims`` (m of them): ``1 - alpha/m`` intervals, Holm over m.
    Select what to show afterwards, never before (the family must not shrink with the selection).

    ``family_of`` splits ``claims`` into several families (a claim's family is the claims with the same key), each
    with its own m; ``runs_of`` judges the claims it names (by id) on other runs than ``runs``: both for a
    sensitivity analysis beside the declared verdicts, never instead of them."""
    keys = [family_of(c) if family_of else "" for c in claims]
    sizes = Counter(keys)
    runs_of = runs_of or {}
    verdicts = [_judge_one(c, runs_of.get(c.id, runs), sizes[k], alpha, n_resamples)
                for c, k in zip(claims, keys, strict=True)]
    for key, size in sizes.items():
        mine = [v for v, k in zip(verdicts, keys, strict=True) if k == key]
        adjusted = holm({v.claim.id: v.test.p for v in mine if v.test is not None and v.verdict != "not evaluable"},
                        family_size=size)
        for v in mine:
            v.p_holm = adjusted.get(v.claim.id, math.nan)
    return verdicts


def verdict_rule(family_size: int, alpha: float = ALPHA) -> str:
    """The verdict rule in one paragraph, printed under every claims table."""
    return (f"Verdict rule: the family is the {family_size} claim(s) given (claim files without runs included); "
            f"each interval is a simultaneous {1 - alpha / family_size:.4g} studentized bootstrap interval of "
            "the mean difference (candidate minus baseline; cases shared by both sides and each side's seeds "
            f"resampled, {N_RESAMPLES} replicates; cut at +/-1 for metrics in [0, 1]), p from the same "
            f"replicates, Holm over {family_size}; an "
            f"interval excludes 0 only when Holm p <= {alpha}. **reproduced**: the interval excludes 0 on the "
            "expected side and the estimate is beyond the margin; **contradicted**: the mirror; **no practical "
            "difference**: the whole interval inside +/- margin; **inconclusive**: otherwise; **not evaluable**: "
            f"a side has fewer than {MIN_RUNS} runs, a run is not converged, the metric is undefined on every "
            "pair, or no run matches a side (the note says which). Margins: the claim's `margin:`, else organ "
            "Dice/IoU/NSD 0.02, lesion-wise metrics 0.05, HD95/ASSD one slice of the evaluation grid. "
            "*(at the floor)*: a no practical difference on a score in [0, 1] whose two sides' means are both within "
            "the margin of 0 (neither side scores the target: not evidence that the two would be equal on one they "
            "learn). "
            f"*Seeds for {POWER:.0%} power*: seeds per side for which the interval would exclude 0 at a true "
            "difference equal to the margin, given the observed case and seed variance (inf: more cases, not "
            "seeds, are needed). *changed after runs*: the claim file changed after the earliest run it judges.")


def _selection(selectors: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in selectors.items())


def metric_label(claim: Claim) -> str:
    """What a claim compares, for tables and figures: ``lesion_f1 (lesion)``, ``seed SD of dice (...)``, or
    for ``compare: strata`` both columns (``lesion_recall_small vs lesion_recall_large (lesion)``)."""
    metric = " vs ".join(claim.columns) if claim.columns else claim.metric
    what = f"{metric} ({', '.join(claim.classes) if claim.classes else 'foreground mean'})"
    return f"seed SD of {what}" if claim.statistic == "seed_sd" else what


def side_labels(claim: Claim) -> tuple[str, str]:
    """What each side is: its selectors, or for ``compare: strata`` the runs' selectors and a column."""
    if claim.columns:
        runs = _selection(claim.candidate)
        return f"{runs} column={claim.columns[0]}".lstrip(), f"{runs} column={claim.columns[1]}".lstrip()
    return _selection(claim.candidate), _selection(claim.baseline)


def _seeds(value: float) -> str:
    return "" if math.isnan(value) else "inf" if math.isinf(value) else str(int(value))


def _iso(timestamp: float) -> str:
    return "" if math.isnan(timestamp) else datetime.fromtimestamp(timestamp, timezone.utc).isoformat(
        timespec="seconds")


CSV_HEADER = ["id", "claim", "source", "metric", "classes", "statistic", "candidate", "baseline", "expect", "margin",
              "n_cases", "candidate_runs", "baseline_runs", "converged_candidate", "converged_baseline",
              "candidate_mean", "baseline_mean", "mean_diff",
              "ci_low", "ci_high", "ci_level", "p_value", "p_holm", "family_size", "case_sd", "seed_sd",
              "seeds_for_80_power", "misses_candidate", "misses_baseline", "verdict", "note", "file", "sha256",
              "last_change", "changed_after_runs"]


def claims_csv(verdicts: Sequence[Verdict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for v in verdicts:
        c, t = v.claim, v.test
        numbers = (t.estimate, t.low, t.high, t.level, t.p) if t else (math.nan,) * 5
        spread = (math.sqrt(t.case_var), math.sqrt(t.seed_var)) if t else (math.nan, math.nan)
        writer.writerow([c.id, c.claim, c.source, c.metric, " ".join(c.classes or ()), c.statistic,
                         *side_labels(c), c.expect, csv_num(v.margin), v.n_cases,
                         v.candidate_runs, v.baseline_runs, v.converged_candidate, v.converged_baseline,
                         csv_num(v.candidate_mean), csv_num(v.baseline_mean), *map(csv_num, numbers), csv_num(v.p_holm), v.family_size, *map(csv_num, spread),
                         _seeds(v.seeds_needed), v.misses_candidate, v.misses_baseline, v.verdict, v.note,
                         str(c.path), c.sha256, _iso(c.last_change),
                         str(v.changed_after_runs).lower()])
    return buf.getvalue()


def _margin_text(margin: float) -> str:
    return "?" if math.isnan(margin) else f"{margin:.3g}"


def _num(value: float) -> str:
    return "" if math.isnan(value) else f"{value:+.3g}"


def levels(v: Verdict) -> str:
    """``candidate / baseline`` means (3 significant digits), empty where no case was paired."""
    if math.isnan(v.candidate_mean):
        return ""
    return f"{v.candidate_mean:.3g} / {v.baseline_mean:.3g}"


def _interval(t: HierarchicalResult | None) -> str:
    return f"{_num(t.estimate)} [{_num(t.low)}, {_num(t.high)}]" if t else ""


def claims_md(verdicts: Sequence[Verdict], sources: Sequence[str], shown: Sequence[str] | None = None,
              folder: Path | None = None) -> str:
    """claims.md: the table of the ``shown`` claim ids (default all), the rule, the notes, the learning
    curves of each claim's runs (links relative to ``folder``, where claims.md is written)."""
    family = verdicts[0].family_size if verdicts else 0
    rows_of = [v for v in verdicts if shown is None or v.claim.id in shown]
    counts = ", ".join(f"{sum(v.verdict == name for v in rows_of)} {name}" for name in VERDICTS)
    out = ["# ctbench claims", "",
           f"Runs: {', '.join(f'`{s}`' for s in sources)}. {len(rows_of)} of {family} claim(s) shown: {counts}.", ""]
    rows = []
    for v in rows_of:
        c = v.claim
        flag = " (changed after runs)" if v.changed_after_runs else ""
        rows.append([f"`{c.id}`{flag}", c.claim + (f" ({c.source})" if c.source else ""), metric_label(c),
                     " vs ".join(f"`{side}`" for side in side_labels(c)), c.expect,
                     _margin_text(v.margin),
                     f"{v.n_cases} x {v.candidate_runs}/{v.baseline_runs}", levels(v), _interval(v.test),
                     fmt_p(v.test.p if v.test else math.nan), fmt_p(v.p_holm),
                     f"{v.converged_candidate}/{v.converged_baseline}", _seeds(v.seeds_needed), f"**{verdict_label(v)}**"])
    out += md_table(["claim", "statement", "metric", "candidate vs baseline", "expected", "margin",
                     "cases x runs", "candidate / baseline", "mean diff [simultaneous CI]", "p", "p (Holm)", "converged", "seeds for 80% power",
                     "verdict"], rows)
    out += ["", verdict_rule(family)]
    notes = [f"`{v.claim.id}`: {v.note}" for v in rows_of if v.note]
    notes += [f"`{v.claim.id}`: misses (at the image diagonal, in the mean above) candidate {v.misses_candidate}, "
              f"baseline {v.misses_baseline} of the paired case x class x run cells" for v in rows_of
              if v.misses_candidate]
    if notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    curves = []
    for v in rows_of:
        links = [f"[{side} {path.name}]({_link(path / 'report' / 'progress.png', folder)})"
                 for side, paths in zip(("candidate", "baseline"), v.paths, strict=True) for path in paths
                 if (path / "report" / "progress.png").is_file()]
        if links:
            curves.append(f"- `{v.claim.id}`: " + ", ".join(links))
    if curves:
        out += ["", "## Learning curves (`report/progress.png` of each run)", "", *curves]
    return "\n".join(out) + "\n"


def _link(path: Path, base: Path | None) -> str:
    import os

    return os.path.relpath(path, base) if base is not None else str(path)


def write_claims(out: Path, verdicts: Sequence[Verdict], sources: Sequence[str],
                 shown: Sequence[str] | None = None) -> list[Path]:
    return [atomic_write_text(out / "claims.md", claims_md(verdicts, sources, shown, out)),
            atomic_write_text(out / "claims.csv", claims_csv(verdicts))]


def print_verdicts(verdicts: Sequence[Verdict], shown: Sequence[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {"reproduced": "green", "contradicted": "red", "no practical difference": "cyan",
               "inconclusive": "yellow", "not evaluable": "dim"}
    family = verdicts[0].family_size if verdicts else 0
    table = Table(title=f"Claims: candidate minus baseline, simultaneous {1 - ALPHA / max(family, 1):.4g} interval")
    for col in ("claim", "metric", "mean diff [CI]", "margin", "p (Holm)", "seeds (80%)", "verdict"):
        table.add_column(col)
    for v in verdicts:
        if shown is not None and v.claim.id not in shown:
            continue
        measured = _interval(v.test) + (f" ({v.note})" if v.verdict == "not evaluable" and v.test else "")
        table.add_row(v.claim.id, metric_label(v.claim), measured or v.note, _margin_text(v.margin),
                      fmt_p(v.p_holm),
                      _seeds(v.seeds_needed), f"[{colours[v.verdict]}]{verdict_label(v)}[/{colours[v.verdict]}]")
    console = Console()
    console.print(table)
    console.print(verdict_rule(family).replace("**", ""))
