"""``ctbench report``: aggregate run reports into model x loss comparison tables, heatmaps and tests.

Reads only the files a run leaves behind (``docs/report-format.md``): ``report/summary.json`` and
``report/per_case.csv`` of every run below the folders given, so it works on runs made anywhere
(laptop, 8-GPU node, SLURM array). Writes to ``--out`` (default: the first folder given):

- ``comparison.csv``: one row per (model, loss) pair;
- ``comparison.md``: model x loss tables (the ``--metric``, default Dice, then HD95), a per-class
  table, the failed or unfinished runs with their reason, and the paired comparison against
  ``--baseline``;
- ``heatmap_dice.png`` and ``heatmap_hd95.png`` (plus ``heatmap_<metric>.png`` for another metric);
- with ``--claims FILE_OR_DIR``: ``claims.md`` and ``claims.csv``, a verdict per declared claim
  (:mod:`ctbench.reports.claims`).

Definitions (also written into ``comparison.md``):

- A run's score is its foreground mean, as in ``summary.json``: the mean over foreground classes
  (``mean_over_classes``) of the per-class mean over cases. HD95/ASSD of a missed or spurious
  structure count at the case's image diagonal (``diagonal_mm``); other undefined cells are left out.
- A cell's mean is the mean of its runs' scores; ``std`` is the sample standard deviation (ddof=1)
  over cases of the per-case foreground mean, where a case scored by several runs (seeds) is first
  averaged over those runs; ``std_runs`` is the sample standard deviation of the run scores.
- The paired comparison of each cell against the baseline pair (:mod:`ctbench.reports.statistics`)
  is on the per-case foreground mean of the metric (averaged over seeds as above): classes within a
  case are not independent, so they are not paired separately.

Pipeline: :mod:`~ctbench.reports.collect` (find and read runs) -> :func:`build` (cells and tests, a
:class:`~ctbench.reports.comparison_data.Comparison`) ->
:mod:`~ctbench.reports.render` (files and the printed table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctbench.atomic import atomic_write_text
from ctbench.errors import CTBenchError
from ctbench.reports.collect import METRICS, Cell, FailedRun, Run, collect, group
from ctbench.reports.comparison_data import Comparison
from ctbench.reports.statistics import PairedResult, adjust, paired_comparison


def parse_baseline(text: str | None, cells: dict[tuple[str, str], Cell]) -> tuple[str, str] | None:
    if not text:
        return None
    available = ", ".join(c.key for c in cells.values()) or "none"
    if text.count(":") != 1 or not all(text.split(":")):
        raise CTBenchError(f"--baseline {text!r}: expected MODEL:LOSS, one of: {available}", exit_code=2)
    model, loss = text.split(":")
    if (model, loss) not in cells:
        raise CTBenchError(f"--baseline {text}: no complete run of that pair; available: {available}",
                           exit_code=2)
    return model, loss


def build(runs: list[Run], failed: list[FailedRun], metric: str, baseline_text: str | None,
          sources: list[str]) -> Comparison:
    """Group runs into cells and compare every cell with the baseline (Holm across the cells)."""
    cells = group(runs)
    baseline = parse_baseline(baseline_text, cells)
    tests: dict[tuple[str, str], PairedResult] = {}
    if baseline is not None:
        base = cells[baseline].case_values(metric)
        tests = {k: paired_comparison(c.case_values(metric), base) for k, c in cells.items() if k != baseline}
        adjust(tests)
    classes = list(dict.fromkeys(c for run in runs for c in run.classes))
    return Comparison(cells, failed, metric, baseline, tests, classes, sources)


#: ``--claims NAME`` for the claim set packaged with ctbench (``ctbench/configs/claims/``)
PACKAGED_CLAIMS = "survey"


def claims_path(source: str) -> Path:
    """``--claims`` as a path: a claim file or folder that exists, else ``survey`` (every packaged claim) or the
    name of one packaged claim file (``c3a_crf_hd95``), so the claims work after ``pip install`` from any folder."""
    from ctbench.config import CONFIG_DIR

    packaged = CONFIG_DIR / "claims"
    if Path(source).exists():
        return Path(source)
    if source == PACKAGED_CLAIMS:
        return packaged
    if (packaged / f"{source}.yaml").is_file():
        return packaged / f"{source}.yaml"
    examples = ", ".join(p.stem for p in sorted(packaged.glob("*.yaml"))[:3])
    raise CTBenchError(f"--claims {source}: no such file or folder, and not a packaged claim; give a claim YAML, a "
                       f"folder of them, '{PACKAGED_CLAIMS}' (every packaged survey claim) or one packaged claim's "
                       f"name ({examples}, ...)", exit_code=2)


def run_cli(args: Any) -> int:
    """``ctbench report DIRS... [--out DIR] [--baseline MODEL:LOSS] [--metric dice] [--claims FILE_OR_DIR]``."""
    from ctbench.reports import render

    metric = (args.metric or "dice").lower()
    if metric not in METRICS:
        raise CTBenchError(f"--metric {args.metric}: unknown, choose one of {', '.join(METRICS)}", exit_code=2)
    claims_source = getattr(args, "claims", None)
    claims = None
    if claims_source:
        from ctbench.reports.claims import load_claims

        claims = load_claims(claims_path(claims_source))  # a bad claim file fails before anything is written
    runs, failed = collect(args.dirs)
    comp = build(runs, failed, metric, args.baseline, [str(d) for d in args.dirs])
    out = Path(args.out) if args.out else Path(args.dirs[0])
    written = [atomic_write_text(out / "comparison.md", render.comparison_md(comp)),
               atomic_write_text(out / "comparison.csv", render.comparison_csv(comp))]
    if not runs:
        raise CTBenchError(f"no complete run below {', '.join(map(str, args.dirs))}: {len(failed)} failed or "
                           f"unfinished run(s), listed in {written[0]}")
    for m in dict.fromkeys(("dice", "hd95", metric)):
        written.append(render.write_heatmap(out / f"heatmap_{m}.png", comp, m))
    render.print_table(comp)
    if claims is not None:
        from ctbench.reports.claims import evaluate_claims, print_verdicts, write_claims

        verdicts = evaluate_claims(claims, runs)
        written += write_claims(out, verdicts, [str(d) for d in args.dirs])
        print_verdicts(verdicts)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
