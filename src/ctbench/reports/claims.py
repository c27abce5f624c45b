"""Claims declared before the runs, and a verdict for each: ``ctbench report RUNS --claims FILE_OR_DIR``.

A claim is a small YAML file (a folder holds one per file, read in name order)::

    id: C7-focal-lesion
    claim: Focal loss segments small lesions better than Dice loss
    source: survey section 4.5
    where: {model: unet}        # selectors both sides share (optional)
    candidate: {loss: focal}    # selectors of the runs the claim is about
    baseline: {loss: dice}      # selectors of the runs it is compared with
    metric: dice                # a per_case.csv metric: dice iou nsd sensitivity precision hd95 assd
    class: lesion               # optional: one class; default the foreground mean over classes
    statistic: mean             # optional: mean (default) or seed_sd (see below)
    expect: higher              # the candidate's value is higher (or lower) than the baseline's

A selector key is ``model``, ``loss``, any scalar field of ``summary.json`` (``dims``, ``dataset``,
``seed``, ...) or any Hydra override of the run (``postprocess``, ``model.pretrained``, ...); a run
belongs to a side when every selector matches. Each side's per-case values are averaged over its runs
(seeds) and compared per case (:mod:`ctbench.reports.statistics`), Holm's correction across the
claims of the report. ``statistic: seed_sd`` compares instead, per case, the standard deviation of the
metric across each side's runs (a stability claim: each side needs two or more seeds). Verdict:

- ``reproduced``: the 95 % bootstrap CI of the mean difference excludes 0 on the expected side;
- ``contradicted``: the CI excludes 0 on the other side;
- ``inconclusive``: the CI contains 0 (or the sides could not be paired: the note says why);
- ``no data``: no complete run matches a side.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctbench.atomic import atomic_write_text
from ctbench.errors import CTBenchError
from ctbench.reports.collect import METRICS, Cell, Run
from ctbench.reports.render import csv_num, fmt, fmt_ci, fmt_p, md_table, protocol_text
from ctbench.reports.statistics import PairedResult, adjust, paired_comparison

REQUIRED_KEYS = ("id", "claim", "candidate", "baseline", "metric", "expect")
OPTIONAL_KEYS = ("source", "where", "class", "statistic")
STATISTICS = ("mean", "seed_sd")
VERDICTS = ("reproduced", "contradicted", "inconclusive", "no data")


@dataclass(frozen=True)
class Claim:
    """One declared claim: the candidate's ``metric`` (of ``cls``, or the foreground mean) is ``expect``
    (``higher``/``lower``) than the baseline's."""

    id: str
    claim: str
    source: str
    candidate: dict[str, str]
    baseline: dict[str, str]
    metric: str
    cls: str | None
    expect: str
    path: Path
    statistic: str = "mean"


@dataclass
class Verdict:
    claim: Claim
    result: PairedResult
    verdict: str
    candidate_runs: int
    baseline_runs: int


def _selector_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _selectors(path: Path, data: Mapping[str, Any], key: str) -> dict[str, str]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping) or any(isinstance(v, (Mapping, list)) for v in value.values()):
        raise CTBenchError(f"{path}: `{key}` must map selector keys to single values, e.g. {{loss: focal}}")
    return {str(k): _selector_text(v) for k, v in value.items()}


def parse_claim(path: Path, data: Any) -> Claim:
    """Check one claim file's content; a :class:`CTBenchError` names the file and the fix."""
    if not isinstance(data, Mapping):
        raise CTBenchError(f"{path}: a claim file holds one mapping with keys {', '.join(REQUIRED_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    unknown = [str(k) for k in data if k not in REQUIRED_KEYS + OPTIONAL_KEYS]
    if missing or unknown:
        problem = f"missing key(s) {', '.join(missing)}" if missing else f"unknown key(s) {', '.join(unknown)}"
        raise CTBenchError(f"{path}: {problem}; a claim has {', '.join(REQUIRED_KEYS)} "
                           f"and optionally {', '.join(OPTIONAL_KEYS)}")
    metric = str(data["metric"]).lower()
    if metric not in METRICS:
        raise CTBenchError(f"{path}: metric {data['metric']!r} unknown, choose one of {', '.join(METRICS)}")
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
    cls = data.get("class")
    return Claim(str(data["id"]), str(data["claim"]), str(data.get("source") or ""), candidate, baseline,
                 metric, None if cls in (None, "", "mean") else str(cls), expect, path, statistic)


def load_claims(source: Path) -> list[Claim]:
    """Claims of one YAML file or of every ``*.yaml``/``*.yml`` file in a folder (name order)."""
    import yaml

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
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise CTBenchError(f"{path}: not readable YAML ({str(err).splitlines()[0]})") from None
        claims.append(parse_claim(path, data))
    ids = [c.id for c in claims]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CTBenchError(f"--claims {source}: claim id(s) {', '.join(duplicates)} used twice; ids must be unique")
    return claims


def matches(run: Run, selectors: Mapping[str, str]) -> bool:
    return all(run.attribute(key) == value for key, value in selectors.items())


def decide(result: PairedResult, expect: str) -> str:
    """The verdict from the CI of the mean difference (candidate - baseline) and the expected side."""
    if result.n == 0 or math.isnan(result.ci_low):
        return "inconclusive"
    if result.ci_low > 0 or result.ci_high < 0:
        higher = result.ci_low > 0
        return "reproduced" if higher == (expect == "higher") else "contradicted"
    return "inconclusive"


def evaluate_claims(claims: Sequence[Claim], runs: Sequence[Run]) -> list[Verdict]:
    """A verdict per claim; p-values Holm-adjusted across the claims that could be tested."""
    verdicts: list[Verdict] = []
    for claim in claims:
        selectors = {"candidate": claim.candidate, "baseline": claim.baseline}
        sides = [Cell(side, "", [r for r in runs if matches(r, sel)]) for side, sel in selectors.items()]
        empty = [f"{side} `{_selection(selectors[side])}`" for side, cell in zip(selectors, sides, strict=True)
                 if not cell.runs]
        overlap = {r.name for r in sides[0].runs} & {r.name for r in sides[1].runs}
        if empty:
            result = PairedResult(note=f"no complete run matches {' and '.join(empty)}")
        elif overlap:
            result = PairedResult(note=f"runs on both sides ({', '.join(sorted(overlap))}): make the selectors "
                                       "exclusive")
        elif claim.cls is not None and not all(claim.cls in r.classes for cell in sides for r in cell.runs):
            result = PairedResult(note=f"class {claim.cls!r} is not scored by every run")
        elif claim.statistic == "seed_sd" and min(len(cell.runs) for cell in sides) < 2:
            result = PairedResult(note="statistic seed_sd needs two or more runs (seeds) on each side")
        elif claim.statistic == "seed_sd":
            result = paired_comparison(sides[0].case_seed_sd(claim.metric, claim.cls),
                                       sides[1].case_seed_sd(claim.metric, claim.cls))
        else:
            result = paired_comparison(sides[0].case_values(claim.metric, claim.cls),
                                       sides[1].case_values(claim.metric, claim.cls))
        verdict = "no data" if empty else decide(result, claim.expect)
        verdicts.append(Verdict(claim, result, verdict, len(sides[0].runs), len(sides[1].runs)))
    adjust({v.claim.id: v.result for v in verdicts})
    return verdicts


def _selection(selectors: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in selectors.items())


def _target(claim: Claim) -> str:
    what = f"{claim.metric} ({claim.cls or 'foreground mean'})"
    return f"seed SD of {what}" if claim.statistic == "seed_sd" else what


CSV_HEADER = ["id", "claim", "source", "metric", "class", "statistic", "candidate", "baseline", "expect", "n_cases",
              "candidate_runs", "baseline_runs", "mean_diff", "ci_low", "ci_high", "effect_size", "p_value",
              "p_holm", "verdict", "note", "file"]


def claims_csv(verdicts: Sequence[Verdict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for v in verdicts:
        c, r = v.claim, v.result
        writer.writerow([c.id, c.claim, c.source, c.metric, c.cls or "", c.statistic, _selection(c.candidate),
                         _selection(c.baseline), c.expect, r.n, v.candidate_runs, v.baseline_runs,
                         *map(csv_num, (r.mean_diff, r.ci_low, r.ci_high, r.effect, r.p, r.p_holm)),
                         v.verdict, r.note, str(c.path)])
    return buf.getvalue()


def claims_md(verdicts: Sequence[Verdict], sources: Sequence[str]) -> str:
    counts = ", ".join(f"{sum(v.verdict == name for v in verdicts)} {name}" for name in VERDICTS)
    out = ["# ctbench claims", "",
           f"Runs: {', '.join(f'`{s}`' for s in sources)}. {len(verdicts)} claim(s): {counts}.", "",
           protocol_text("metric of the claim's class (or the foreground mean)"),
           "Verdict: **reproduced** when the CI excludes 0 on the expected side, **contradicted** when it "
           "excludes 0 on the other side, **inconclusive** otherwise; **no data** when no complete run "
           "matches a side. Differences are candidate minus baseline in the metric's units.", ""]
    rows = []
    for v in verdicts:
        c, r = v.claim, v.result
        tested = r.n > 0
        rows.append([f"`{c.id}`", c.claim + (f" ({c.source})" if c.source else ""), _target(c),
                     f"`{_selection(c.candidate)}` vs `{_selection(c.baseline)}`", c.expect,
                     f"{r.n} x {v.candidate_runs}/{v.baseline_runs}" if tested else "",
                     fmt(r.mean_diff, c.metric) if tested else "", fmt_ci(r.ci_low, r.ci_high, c.metric),
                     f"{r.effect:+.2f}" if tested else "", fmt_p(r.p), fmt_p(r.p_holm), f"**{v.verdict}**"])
    out += md_table(["claim", "statement", "metric", "candidate vs baseline", "expected", "cases x runs",
                     "mean diff", "95% CI", "r", "p", "p (Holm)", "verdict"], rows)
    notes = [f"`{v.claim.id}`: {v.result.note}" for v in verdicts if v.result.note]
    if notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"


def write_claims(out: Path, verdicts: Sequence[Verdict], sources: Sequence[str]) -> list[Path]:
    return [atomic_write_text(out / "claims.md", claims_md(verdicts, sources)),
            atomic_write_text(out / "claims.csv", claims_csv(verdicts))]


def print_verdicts(verdicts: Sequence[Verdict]) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {"reproduced": "green", "contradicted": "red", "inconclusive": "yellow", "no data": "dim"}
    table = Table(title="Claims: candidate minus baseline, 95% bootstrap CI")
    for col in ("claim", "metric", "mean diff [95% CI]", "p (Holm)", "verdict"):
        table.add_column(col)
    for v in verdicts:
        r, metric = v.result, v.claim.metric
        diff = f"{fmt(r.mean_diff, metric)} {fmt_ci(r.ci_low, r.ci_high, metric)}" if r.n else r.note
        table.add_row(v.claim.id, _target(v.claim), diff, fmt_p(r.p_holm),
                      f"[{colours[v.verdict]}]{v.verdict}[/{colours[v.verdict]}]")
    Console().print(table)
