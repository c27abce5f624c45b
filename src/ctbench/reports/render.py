"""Renderers of a :class:`~ctbench.reports.comparison_data.Comparison`: ``comparison.csv``,
``comparison.md``, heatmap PNGs and the rich table printed by ``ctbench report``.

The model x loss grid is computed once (:func:`grid`) and drawn by the markdown table, the rich table
and the heatmap alike. matplotlib and rich are imported inside the functions that use them.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ctbench.atomic import atomic_write
from ctbench.reports.collect import METRICS, Cell
from ctbench.reports.comparison_data import Comparison
from ctbench.reports.statistics import ALPHA, CONFIDENCE, N_RESAMPLES, SEED


def digits(metric: str) -> int:
    return 3 if METRICS.get(metric, ("", True))[1] else 2


def fmt(value: float, metric: str) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits(metric)}f}"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return ""
    return "p<0.001" if p < 0.001 else f"p={p:.3g}"


def fmt_ci(low: float, high: float, metric: str) -> str:
    return "" if math.isnan(low) else f"[{fmt(low, metric)}, {fmt(high, metric)}]"


def csv_num(value: float | int) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = [[c.replace("|", "\\|") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return lines


def metric_title(metric: str) -> str:
    label, higher = METRICS[metric]
    return f"{label}, {'higher' if higher else 'lower'} is better"


def best_per_row(cells: dict[tuple[str, str], Cell], metric: str) -> set[tuple[str, str]]:
    """The (model, loss) pairs holding the best mean of their model's row (ties all count)."""
    higher = METRICS[metric][1]
    best: set[tuple[str, str]] = set()
    for model in dict.fromkeys(m for m, _ in cells):
        row = {k: c.mean(metric) for k, c in cells.items() if k[0] == model and not math.isnan(c.mean(metric))}
        if row:
            target = max(row.values()) if higher else min(row.values())
            best |= {k for k, v in row.items() if math.isclose(v, target, rel_tol=1e-12, abs_tol=1e-12)}
    return best


@dataclass(frozen=True)
class GridCell:
    """One model x loss cell as every renderer shows it."""

    #: ``mean ± std over cases [± std over runs, n runs]``, or ``failed`` / ``—`` without a complete run
    text: str
    #: a complete run exists
    present: bool
    #: holds the best mean of its row
    best: bool
    #: ``(baseline)``, ``(p=…)`` or empty
    note: str
    #: mean shown in the heatmap (NaN without a complete run)
    mean: float


def grid(comp: Comparison, metric: str, with_p: bool) -> list[tuple[str, list[GridCell]]]:
    """Per model (row), the cells of every loss (columns ``comp.losses``)."""
    best = best_per_row(comp.cells, metric)
    failed_pairs = {(f.model, f.loss) for f in comp.failed}
    rows = []
    for model in comp.models:
        row = []
        for loss in comp.losses:
            cell = comp.cells.get((model, loss))
            if cell is None:
                row.append(GridCell("failed" if (model, loss) in failed_pairs else "—", False, False, "", math.nan))
                continue
            text = f"{fmt(cell.mean(metric), metric)} ± {fmt(cell.std_cases(metric), metric)}"
            if len(cell.runs) > 1:
                text += f" [± {fmt(cell.std_runs(metric), metric)}, {len(cell.runs)} runs]"
            note = ""
            if with_p and comp.baseline is not None:
                test = comp.tests.get((model, loss))
                note = "(baseline)" if test is None else (f"({fmt_p(test.p)})" if test.n else "")
            row.append(GridCell(text, True, (model, loss) in best, note, cell.mean(metric)))
        rows.append((model, row))
    return rows


def comparison_csv(comp: Comparison) -> str:
    metrics = comp.csv_metrics()
    header = ["model", "loss", "n_runs", "n_cases"]
    for m in metrics:
        header += [f"{m}_mean", f"{m}_std", f"{m}_std_runs"]
    for m in metrics:
        for cls in comp.classes:
            col = re.sub(r"\s+", "_", cls.strip())
            header += [f"{m}_{col}", f"{m}_{col}_std"]
    header += ["test_metric", "baseline", "n_paired", "mean_diff", "ci_low", "ci_high", "median_diff",
               "effect_size", "p_value", "p_holm", "test_note", "seeds", "folds", "runs"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    base = ":".join(comp.baseline) if comp.baseline else ""
    for key, cell in comp.cells.items():
        row: list[str] = [cell.model, cell.loss, str(len(cell.runs)), str(len(cell.cases))]
        for m in metrics:
            row += [csv_num(cell.mean(m)), csv_num(cell.std_cases(m)), csv_num(cell.std_runs(m))]
        for m in metrics:
            for cls in comp.classes:
                row += [csv_num(cell.mean(m, cls)), csv_num(cell.std_cases(m, cls))]
        test = comp.tests.get(key)
        if comp.baseline is None:
            row += [comp.metric, "", "", "", "", "", "", "", "", "", "no baseline given"]
        elif test is None:
            row += [comp.metric, base, "", "", "", "", "", "", "", "", "baseline"]
        else:
            numbers = (test.mean_diff, test.ci_low, test.ci_high, test.median_diff, test.effect, test.p, test.p_holm)
            row += [comp.metric, base, str(test.n) if test.n else "", *map(csv_num, numbers), test.note]
        seeds = [str(r.summary.get("seed")) for r in cell.runs if r.summary.get("seed") is not None]
        folds = [str(r.summary.get("fold")) for r in cell.runs if r.summary.get("fold") is not None]
        row += [";".join(seeds), ";".join(folds), ";".join(r.name for r in cell.runs)]
        writer.writerow(row)
    return buf.getvalue()


def comparison_md(comp: Comparison) -> str:
    m = comp.metric
    second = "hd95" if m != "hd95" else "dice"
    n_runs = sum(len(c.runs) for c in comp.cells.values())
    classes_used = list(dict.fromkeys(c for cell in comp.cells.values() for r in cell.runs for c in r.mean_over))
    out = [
        "# ctbench comparison",
        "",
        f"Source: {', '.join(f'`{s}`' for s in comp.sources)}. {n_runs} complete run(s) in "
        f"{len(comp.cells)} model x loss pair(s); {len(comp.failed)} failed or unfinished.",
        "",
        "Each cell: mean ± std over cases of the foreground mean "
        f"(mean over the classes {', '.join(f'`{c}`' for c in classes_used)}; undefined cells left out, "
        "HD95/ASSD of a missed or spurious structure counted at the image diagonal). "
        "Where a pair has several runs (seeds/folds) the mean is over runs, a case's value is averaged "
        "over the runs that scored it, and `[± s, n runs]` is the std over runs. "
        "Std is the sample std (ddof=1). Best cell per row (model) in **bold**.",
        "",
    ]
    for metric, with_p in ((m, True), (second, False)):
        out += [f"## {metric_title(metric)}", ""]
        rows = [[f"`{model}`", *[(f"**{c.text}**" if c.best else c.text) + (f" {c.note}" if c.note else "")
                                 for c in cells]] for model, cells in grid(comp, metric, with_p)]
        out += md_table(["model \\ loss", *comp.losses], rows)
        if with_p and comp.baseline is not None:
            out += ["", f"p: paired sign-flip permutation test against `{':'.join(comp.baseline)}` "
                    "(see *Statistical test*)."]
        out.append("")

    out += [f"## Per class: {METRICS[m][0]}", "",
            "Mean over runs ± std over cases; best pair per class in **bold**.", ""]
    higher = METRICS[m][1]
    rows = []
    for cell in comp.cells.values():
        row = [f"`{cell.model}`", f"`{cell.loss}`"]
        for cls in comp.classes:
            vals = [c.mean(m, cls) for c in comp.cells.values() if not math.isnan(c.mean(m, cls))]
            best = (max(vals) if higher else min(vals)) if vals else math.nan
            mean = cell.mean(m, cls)
            text = f"{fmt(mean, m)} ± {fmt(cell.std_cases(m, cls), m)}" if not math.isnan(mean) else "—"
            row.append(f"**{text}**" if math.isclose(mean, best, abs_tol=1e-12) else text)
        rows.append(row)
    out += md_table(["model", "loss", *comp.classes], rows) + [""]

    out += ["## Failed or unfinished runs", ""]
    if comp.failed:
        out += md_table(["run", "model", "loss", "reason"],
                        [[f"`{f.name}`", f.model, f.loss, f.reason] for f in comp.failed])
    else:
        out.append("None.")
    out.append("")

    out += ["## Statistical test", ""]
    out += _test_section(comp)
    notes = _notes(comp)
    if notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"


def protocol_text(label: str) -> str:
    """The paired protocol in one paragraph (comparison.md and claims.md)."""
    return (f"Per case, the {label} is averaged over a group's runs (seeds, folds); the differences "
            "candidate minus baseline are paired per case. Mean difference with a studentized bootstrap "
            f"{CONFIDENCE:.0%} CI ({N_RESAMPLES} resamples of the cases, seed {SEED}); "
            "two-sided sign-flip permutation p of the mean difference (exact up to 24 non-zero differences); "
            "effect size: matched-pairs rank-biserial "
            "correlation r (Kerby 2014), +1 when every case favours the candidate's higher value; Holm's "
            "correction across all comparisons of the report. Tested only where both sides scored the "
            "same cases.")


def _test_section(comp: Comparison) -> list[str]:
    label = METRICS[comp.metric][0]
    if comp.baseline is None:
        pairs = ", ".join(f"`{c.key}`" for c in comp.cells.values())
        return [f"No baseline: pass `--baseline MODEL:LOSS` (one of {pairs}) to test every cell against it."]
    base = ":".join(comp.baseline)
    tested = sum(1 for t in comp.tests.values() if t.n)
    lines = [f"Paired sign-flip permutation test of each pair against the baseline `{base}` on the per-case "
             f"foreground mean {label} (classes within a case are not independent, so one pair of values per "
             f"case). {protocol_text('foreground mean ' + label)} Holm over {tested} tested pair(s).", ""]
    rows = []
    m = comp.metric
    for (model, loss), t in comp.tests.items():
        numbers = [fmt(t.mean_diff, m), fmt_ci(t.ci_low, t.ci_high, m), fmt(t.median_diff, m),
                   f"{t.effect:+.2f}"] if t.n else ["", "", "", ""]
        rows.append([f"`{model}:{loss}`", str(t.n) if t.n else "", *numbers, fmt_p(t.p), fmt_p(t.p_holm),
                     ("yes" if t.p_holm < ALPHA else "no") if not math.isnan(t.p_holm) else "", t.note])
    if not rows:
        return [*lines, "Only the baseline pair is present: nothing to test."]
    return lines + md_table(["pair", "cases", "mean diff", f"{CONFIDENCE:.0%} CI", "median diff", "r", "p",
                             "p (Holm)", f"significant at {ALPHA}", "note"], rows)


def _notes(comp: Comparison) -> list[str]:
    notes = []
    runs = [r for c in comp.cells.values() for r in c.runs]
    for key in ("dataset", "dims", "split", "scope"):
        values = sorted({str(r.summary.get(key)) for r in runs if r.summary.get(key) is not None})
        if len(values) > 1:
            notes.append(f"runs mix {key} values ({', '.join(values)}): cells may not be comparable")
    for cell in comp.cells.values():
        counts = {len(r.cases) for r in cell.runs}
        if len(counts) > 1:
            notes.append(f"`{cell.key}`: its runs scored different numbers of cases ({sorted(counts)})")
    return notes


def write_heatmap(path: Path, comp: Comparison, metric: str) -> Path:
    """A model x loss heatmap of the mean, annotated; the colour map runs so that good is bright."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    label, higher = METRICS[metric]
    rows = grid(comp, metric, with_p=False)
    values = np.array([[c.mean for c in cells] for _, cells in rows], dtype=np.float64)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3)
    cmap = colormaps["viridis" if higher else "viridis_r"].with_extremes(bad="#d9d9d9")
    norm = Normalize(lo, hi)
    fig = Figure(figsize=(1.6 + 1.5 * len(comp.losses), 1.2 + 0.8 * len(rows)), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
    for i, (_, cells) in enumerate(rows):
        for j, c in enumerate(cells):
            if not c.present:
                ax.text(j, i, c.text, ha="center", va="center", fontsize=8, color="#555555")
                continue
            r, g, b, _ = cmap(norm(c.mean)) if not math.isnan(c.mean) else (0.85, 0.85, 0.85, 1)
            colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, i, c.text.replace(" ± ", "\n± ").replace(" [", "\n["), ha="center", va="center",
                    fontsize=8, color=colour, fontweight="bold" if c.best else "normal")
    ax.set_xticks(range(len(comp.losses)), comp.losses, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [model for model, _ in rows])
    ax.set_xlabel("loss")
    ax.set_ylabel("model")
    ax.set_title(f"Mean {label} over foreground classes\n({'higher' if higher else 'lower'} is better; "
                 "bold: best per row)", fontsize=9)
    fig.colorbar(image, ax=ax, label=label)
    fig.tight_layout()
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png"))


def print_table(comp: Comparison) -> None:
    """The main model x loss table, with rich; failed runs listed below it."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    metric = comp.metric
    base = f", p vs {':'.join(comp.baseline)}" if comp.baseline else ""
    table = Table(title=f"{metric_title(metric)}: mean ± std over cases{base}")
    table.add_column("model \\ loss", style="cyan")
    for loss in comp.losses:
        table.add_column(loss, justify="right")
    for model, cells in grid(comp, metric, with_p=True):
        row = []
        for c in cells:
            text = escape(c.text + (f" {c.note}" if c.note else ""))
            if not c.present:
                text = f"[yellow]{text}[/yellow]" if c.text == "failed" else f"[dim]{text}[/dim]"
            row.append(f"[bold green]{text}[/bold green]" if c.best else text)
        table.add_row(model, *row)
    console = Console()
    console.print(table)
    if comp.failed:
        console.print(f"[yellow]{len(comp.failed)} failed or unfinished run(s):[/yellow]")
        for f in comp.failed:
            console.print(f"  {f.name}: {f.reason}", markup=False, highlight=False)
