"""``ctbench report``: aggregate run reports into model x loss comparison tables, heatmaps and tests.

Reads only the files a run leaves behind (``docs/report-format.md``): ``report/summary.json`` and
``report/per_case.csv`` of every run below the folders given, so it works on runs made anywhere
(laptop, 8-GPU node, SLURM array). Writes to ``--out`` (default: the first folder given):

- ``comparison.csv``: one row per (model, loss) pair;
- ``comparison.md``: model x loss tables (the ``--metric``, default Dice, then HD95), a per-class
  table, the failed or unfinished runs with their reason, and the statistical test;
- ``heatmap_dice.png`` and ``heatmap_hd95.png`` (plus ``heatmap_<metric>.png`` for another metric).

Definitions (also written into ``comparison.md``):

- A run's score is its foreground mean, as in ``summary.json``: the mean over foreground classes
  (``mean_over_classes``) of the per-class mean over cases; NaN cells (HD95 with one side empty)
  are left out of the means.
- A cell's mean is the mean of its runs' scores; ``std`` is the sample standard deviation (ddof=1)
  over cases of the per-case foreground mean, where a case scored by several runs (seeds) is first
  averaged over those runs; ``std_runs`` is the sample standard deviation of the run scores (seeds
  or folds), empty for a single run.
- The paired test is a Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided, defaults)
  of each cell against the baseline pair, paired **per case** on the per-case foreground mean of
  the metric (averaged over seeds as above). Classes within a case are not independent, so they
  are not paired separately. A cell is tested only when it scored exactly the same cases as the
  baseline; cases where either side is NaN are dropped. Holm's correction over all tested cells
  is given beside the raw p-values.

matplotlib and scipy are imported inside the functions that use them, so ``ctbench --help`` stays
fast.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctbench.atomic import atomic_write, atomic_write_text
from ctbench.errors import CTBenchError

#: Metrics a table can show: name -> (label, higher is better).
METRICS: dict[str, tuple[str, bool]] = {
    "dice": ("Dice", True),
    "iou": ("IoU", True),
    "nsd": ("NSD", True),
    "sensitivity": ("Sensitivity", True),
    "precision": ("Precision", True),
    "hd95": ("HD95 (mm)", False),
    "assd": ("ASSD (mm)", False),
}
#: Metrics always written to comparison.csv.
CSV_METRICS: tuple[str, ...] = ("dice", "iou", "hd95")
REQUIRED_COLUMNS: tuple[str, ...] = ("case", "class", "dice", "iou", "hd95")
#: Folders a search never enters (Hydra's and submitit's bookkeeping, logs, checkpoints).
_SKIP_DIRS = {"checkpoints", "tensorboard", "lightning_logs", "__pycache__"}
ALPHA = 0.05


# --------------------------------------------------------------------------------------------------
# Runs


@dataclass
class Run:
    """One complete run: its summary and its per-case, per-class metric values."""

    name: str
    path: Path
    model: str
    loss: str
    summary: dict[str, Any]
    classes: list[str]
    mean_over: list[str]
    #: metric -> {(case, class): value}; NaN where the cell was empty.
    values: dict[str, dict[tuple[str, str], float]]

    @property
    def cases(self) -> list[str]:
        return list(dict.fromkeys(case for case, _ in next(iter(self.values.values()))))

    def class_mean(self, metric: str, cls: str) -> float:
        """Mean over cases of one class (NaN cells left out)."""
        return _nanmean(v for (_, c), v in self.values.get(metric, {}).items() if c == cls)

    def score(self, metric: str) -> float:
        """The run's foreground mean: mean over classes of the per-class means over cases."""
        return _nanmean(self.class_mean(metric, cls) for cls in self.mean_over)

    def case_values(self, metric: str, cls: str | None = None) -> dict[str, float]:
        """Per case: the value of ``cls``, or the foreground mean over classes when ``cls`` is None."""
        table = self.values.get(metric, {})
        out: dict[str, float] = {}
        for case in self.cases:
            if cls is None:
                out[case] = _nanmean(table.get((case, c), math.nan) for c in self.mean_over)
            elif (case, cls) in table:
                out[case] = table[(case, cls)]
        return out


@dataclass
class FailedRun:
    """A run that failed or did not finish, and why."""

    name: str
    path: Path
    model: str
    loss: str
    reason: str


@dataclass
class Cell:
    """All complete runs of one (model, loss) pair (seeds, folds)."""

    model: str
    loss: str
    runs: list[Run] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.model}:{self.loss}"

    @property
    def cases(self) -> list[str]:
        return list(dict.fromkeys(case for run in self.runs for case in run.cases))

    def mean(self, metric: str, cls: str | None = None) -> float:
        """Mean over runs of the run score (or of the run's class mean for ``cls``)."""
        if cls is None:
            return _nanmean(run.score(metric) for run in self.runs)
        return _nanmean(run.class_mean(metric, cls) for run in self.runs)

    def std_runs(self, metric: str) -> float:
        """Sample standard deviation over runs of the run scores; NaN for fewer than two runs."""
        return _nanstd([run.score(metric) for run in self.runs])

    def case_values(self, metric: str, cls: str | None = None) -> dict[str, float]:
        """Per case, the runs' per-case values averaged over the runs that scored the case."""
        per_case: dict[str, list[float]] = {}
        for run in self.runs:
            for case, value in run.case_values(metric, cls).items():
                per_case.setdefault(case, []).append(value)
        return {case: _nanmean(vals) for case, vals in per_case.items()}

    def std_cases(self, metric: str, cls: str | None = None) -> float:
        return _nanstd(list(self.case_values(metric, cls).values()))


def _nanmean(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return math.fsum(vals) / len(vals) if vals else math.nan


def _nanstd(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1) of the non-NaN values; NaN for fewer than two."""
    vals = [v for v in values if not math.isnan(v)]
    if len(vals) < 2:
        return math.nan
    mean = math.fsum(vals) / len(vals)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


def _to_float(text: str | None) -> float:
    text = (text or "").strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


# --------------------------------------------------------------------------------------------------
# Finding and reading runs


def _is_run_dir(path: Path) -> bool:
    if (path / "report" / "summary.json").is_file():
        return True
    if (path / "summary.json").is_file() and (path / "per_case.csv").is_file():
        return True  # `ctbench score --out DIR` output, or a report/ folder given directly
    if (path / ".hydra").is_dir():
        # A Hydra job folder without a report: an unfinished run, unless it is a predict/bench job.
        has_train_log = any((path / f"{job}.log").exists() for job in ("train", "eval"))
        other_job = any((path / name).exists() for name in ("predict.log", "bench.log", "benchmark.json"))
        return has_train_log or (path / "checkpoints").is_dir() or not other_job
    return False


def find_run_dirs(folder: Path) -> list[Path]:
    """Every run folder at or below ``folder``, sorted; a run's own subfolders are not searched."""
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(folder):
        path = Path(dirpath)
        if _is_run_dir(path):
            found.append(path)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
    return sorted(found)


def _report_files(path: Path) -> tuple[Path, Path]:
    if (path / "report" / "summary.json").is_file() or not (path / "summary.json").is_file():
        return path / "report" / "summary.json", path / "report" / "per_case.csv"
    return path / "summary.json", path / "per_case.csv"


def _hydra_choices(path: Path) -> dict[str, str]:
    """``key=value`` command-line overrides of a Hydra job (``.hydra/overrides.yaml``)."""
    overrides = path / ".hydra" / "overrides.yaml"
    if not overrides.is_file():
        return {}
    try:
        import yaml

        items = yaml.safe_load(overrides.read_text(encoding="utf-8")) or []
    except Exception:  # a damaged file only costs the label
        return {}
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str) and "=" in item:
            key, value = item.split("=", 1)
            out[key.lstrip("+~").split("@")[0]] = value
    return out


def _run_name(path: Path, folder: Path, prefix_folder: bool) -> str:
    if path == folder:
        name = folder.parent.name if folder.name == "report" else folder.name
        return name or str(folder)
    rel = path.relative_to(folder).as_posix()
    return f"{folder.name}/{rel}" if prefix_folder else rel


def read_run(path: Path, name: str) -> Run | FailedRun:
    """Read one run folder: a :class:`Run` when its report is complete, else a :class:`FailedRun`."""
    choices = _hydra_choices(path)
    model, loss = choices.get("model", "?"), choices.get("loss", "?")
    summary_path, per_case_path = _report_files(path)

    def failed(reason: str) -> FailedRun:
        log = _last_error_line(path)
        return FailedRun(name, path, model, loss, f"{reason}; log: {log}" if log else reason)

    if not summary_path.is_file():
        return failed(f"no report ({_checkpoint_note(path)})")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return failed(f"unreadable {summary_path.relative_to(path).as_posix()} ({err})")
    model = str(summary.get("model") or (path.name if model == "?" else model))
    loss = str(summary.get("loss") or (loss if loss != "?" else "-"))
    status = summary.get("status")
    if status != "complete":
        detail = next((str(summary[k]) for k in ("error", "reason", "message") if summary.get(k)), "")
        reason = f"status {status!r}" if status is not None else "no status in summary.json"
        return failed(f"{reason}: {detail}" if detail else reason)

    rel_csv = per_case_path.relative_to(path).as_posix()
    if not per_case_path.is_file():
        return failed(f"{rel_csv} missing")
    try:
        with per_case_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        return failed(f"unreadable {rel_csv} ({err})")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        return failed(f"{rel_csv} lacks column(s) {', '.join(missing)}")
    if not rows:
        return failed(f"{rel_csv} has no rows")

    metrics = [m for m in METRICS if m in columns]
    values: dict[str, dict[tuple[str, str], float]] = {m: {} for m in metrics}
    classes: list[str] = []
    for row in rows:
        key = (row["case"], row["class"])
        if key[1] not in classes:
            classes.append(key[1])
        for m in metrics:
            values[m][key] = _to_float(row.get(m))
    listed = summary.get("mean_over_classes")
    mean_over = [c for c in listed if c in classes] if isinstance(listed, list) else []
    return Run(name, path, model, loss, summary, classes, mean_over or list(classes), values)


def _checkpoint_note(path: Path) -> str:
    ckpt = path / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        return "no checkpoint"
    progress = read_checkpoint_progress(ckpt)
    if progress is None or progress.get("epoch") is None:
        return "last.ckpt present, epoch unreadable"
    note = f"last.ckpt at epoch {progress['epoch']}"
    return f"{note}, step {progress['global_step']}" if progress.get("global_step") is not None else note


class _Stub:
    """Stands in for every class a checkpoint pickle names: accepts anything, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _CheckpointUnpickler(pickle.Unpickler):
    """Reads a torch checkpoint's pickle without torch and without running any of its code."""

    _SAFE = {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
             ("builtins", "slice"), ("builtins", "complex")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._SAFE:
            return super().find_class(module, name)
        return _Stub

    def persistent_load(self, pid: Any) -> None:  # tensor storages are not needed
        return None


def read_checkpoint_progress(ckpt: Path) -> dict[str, Any] | None:
    """``{"epoch": …, "global_step": …}`` of a Lightning checkpoint, read without importing torch.

    A torch checkpoint is a zip archive whose ``*/data.pkl`` holds the pickled dictionary; tensor
    storages are separate entries, so the small integers can be read by a restricted unpickler.
    Returns None when the file is not in that format.
    """
    try:
        with zipfile.ZipFile(ckpt) as archive:
            entry = next((n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1), None)
            if entry is None:
                return None
            with archive.open(entry) as fh:
                data = _CheckpointUnpickler(fh).load()
    except Exception:  # any damage means "unreadable", never a crash
        return None
    if not isinstance(data, dict):
        return None
    return {k: data.get(k) for k in ("epoch", "global_step") if isinstance(data.get(k), int)}


_LOG_PREFIX = re.compile(r"^(\[[^\]]*\])+\s*(-\s*)?")


def _last_error_line(path: Path, max_bytes: int = 1 << 20) -> str:
    """The last line containing "Error" in the run folder's ``*.log`` files (newest file last)."""
    logs = sorted(path.glob("*.log"), key=lambda p: (p.stat().st_mtime, p.name))
    found = ""
    for log in logs:
        try:
            with log.open("rb") as fh:
                fh.seek(max(0, log.stat().st_size - max_bytes))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if "Error" in line:
                found = _LOG_PREFIX.sub("", line.strip())
    return found[:200] + ("…" if len(found) > 200 else "")


def collect(folders: Sequence[str | os.PathLike]) -> tuple[list[Run], list[FailedRun]]:
    """Read every run below ``folders``; raises :class:`CTBenchError` for a missing folder or no run."""
    paths = [Path(f) for f in folders]
    for folder in paths:
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise CTBenchError(f"{folder} {what}: give run or multirun folders written by ctbench train")
    runs: list[Run] = []
    failed: list[FailedRun] = []
    seen: set[Path] = set()
    for folder in paths:
        for run_dir in find_run_dirs(folder):
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            result = read_run(run_dir, _run_name(run_dir, folder, prefix_folder=len(paths) > 1))
            (runs if isinstance(result, Run) else failed).append(result)
    if not runs and not failed:
        where = ", ".join(str(p) for p in paths)
        raise CTBenchError(f"no run reports below {where}: expected report/summary.json from ctbench train")
    return runs, failed


def group(runs: Iterable[Run]) -> dict[tuple[str, str], Cell]:
    cells: dict[tuple[str, str], Cell] = {}
    for run in runs:
        cells.setdefault((run.model, run.loss), Cell(run.model, run.loss)).runs.append(run)
    return dict(sorted(cells.items()))


# --------------------------------------------------------------------------------------------------
# Statistical test


@dataclass
class TestResult:
    p: float = math.nan
    p_holm: float = math.nan
    n: int = 0
    median_diff: float = math.nan
    note: str = ""


def paired_test(cell: Cell, baseline: Cell, metric: str) -> TestResult:
    """Wilcoxon signed-rank test of ``cell`` against ``baseline``, paired per case (see module doc)."""
    ours, theirs = cell.case_values(metric), baseline.case_values(metric)
    if set(ours) != set(theirs):
        return TestResult(note=f"not tested: cases differ ({len(ours)} vs {len(theirs)} in the baseline)")
    cases = [c for c in sorted(ours) if not (math.isnan(ours[c]) or math.isnan(theirs[c]))]
    if not cases:
        return TestResult(note="not tested: no case with a value on both sides")
    x = [ours[c] for c in cases]
    y = [theirs[c] for c in cases]
    diffs = sorted(a - b for a, b in zip(x, y, strict=True))
    mid = len(diffs) // 2
    median = diffs[mid] if len(diffs) % 2 else (diffs[mid - 1] + diffs[mid]) / 2
    if all(d == 0 for d in diffs):
        return TestResult(1.0, n=len(cases), median_diff=0.0, note="identical on every case")
    import warnings

    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(x, y).pvalue)
    note = ""
    if 2.0 / 2 ** len(cases) > ALPHA:
        note = f"only {len(cases)} paired cases: p < {ALPHA} is impossible"
    return TestResult(p, n=len(cases), median_diff=median, note=note)


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (NaN entries are left out and stay NaN)."""
    tested = sorted((p, k) for k, p in pvalues.items() if not math.isnan(p))
    out = {k: math.nan for k in pvalues}
    running = 0.0
    for i, (p, k) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - i) * p))
        out[k] = running
    return out


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


# --------------------------------------------------------------------------------------------------
# Formatting


def _digits(metric: str) -> int:
    return 3 if METRICS.get(metric, ("", True))[1] else 2


def _fmt(value: float, metric: str) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{_digits(metric)}f}"


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return ""
    return "p<0.001" if p < 0.001 else f"p={p:.3g}"


def _csv_num(value: float | int) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _col(cls: str) -> str:
    return re.sub(r"\s+", "_", cls.strip())


def _cell_text(cell: Cell, metric: str) -> str:
    text = f"{_fmt(cell.mean(metric), metric)} ± {_fmt(cell.std_cases(metric), metric)}"
    if len(cell.runs) > 1:
        text += f" [± {_fmt(cell.std_runs(metric), metric)}, {len(cell.runs)} runs]"
    return text


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


# --------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class Comparison:
    """Everything the writers need."""

    cells: dict[tuple[str, str], Cell]
    failed: list[FailedRun]
    metric: str
    baseline: tuple[str, str] | None
    tests: dict[tuple[str, str], TestResult]
    classes: list[str]
    sources: list[str]

    @property
    def models(self) -> list[str]:
        return sorted({m for m, _ in self.cells} | {f.model for f in self.failed if f.model != "?"})

    @property
    def losses(self) -> list[str]:
        return sorted({loss for _, loss in self.cells} | {f.loss for f in self.failed if f.loss != "?"})

    def csv_metrics(self) -> list[str]:
        return list(CSV_METRICS) + ([self.metric] if self.metric not in CSV_METRICS else [])


def build(runs: list[Run], failed: list[FailedRun], metric: str, baseline_text: str | None,
          sources: list[str]) -> Comparison:
    cells = group(runs)
    baseline = parse_baseline(baseline_text, cells)
    tests: dict[tuple[str, str], TestResult] = {}
    if baseline is not None:
        base = cells[baseline]
        tests = {k: paired_test(c, base, metric) for k, c in cells.items() if k != baseline}
        adjusted = holm({f"{m}:{loss}": t.p for (m, loss), t in tests.items()})
        for (m, loss), t in tests.items():
            t.p_holm = adjusted[f"{m}:{loss}"]
    classes = list(dict.fromkeys(c for run in runs for c in run.classes))
    return Comparison(cells, failed, metric, baseline, tests, classes, sources)


def comparison_csv(comp: Comparison) -> str:
    import io

    metrics = comp.csv_metrics()
    header = ["model", "loss", "n_runs", "n_cases"]
    for m in metrics:
        header += [f"{m}_mean", f"{m}_std", f"{m}_std_runs"]
    for m in metrics:
        for cls in comp.classes:
            header += [f"{m}_{_col(cls)}", f"{m}_{_col(cls)}_std"]
    header += ["test_metric", "baseline", "n_paired", "median_diff", "p_value", "p_holm", "test_note",
               "seeds", "folds", "runs"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    base = ":".join(comp.baseline) if comp.baseline else ""
    for key, cell in comp.cells.items():
        row: list[str] = [cell.model, cell.loss, str(len(cell.runs)), str(len(cell.cases))]
        for m in metrics:
            row += [_csv_num(cell.mean(m)), _csv_num(cell.std_cases(m)), _csv_num(cell.std_runs(m))]
        for m in metrics:
            for cls in comp.classes:
                row += [_csv_num(cell.mean(m, cls)), _csv_num(cell.std_cases(m, cls))]
        test = comp.tests.get(key)
        if comp.baseline is None:
            row += [comp.metric, "", "", "", "", "", "no baseline given"]
        elif test is None:
            row += [comp.metric, base, "", "", "", "", "baseline"]
        else:
            row += [comp.metric, base, str(test.n) if test.n else "", _csv_num(test.median_diff),
                    _csv_num(test.p), _csv_num(test.p_holm), test.note]
        seeds = [str(r.summary.get("seed")) for r in cell.runs if r.summary.get("seed") is not None]
        folds = [str(r.summary.get("fold")) for r in cell.runs if r.summary.get("fold") is not None]
        row += [";".join(seeds), ";".join(folds), ";".join(r.name for r in cell.runs)]
        writer.writerow(row)
    return buf.getvalue()


def _grid_rows(comp: Comparison, metric: str, with_p: bool) -> list[list[str]]:
    """Markdown cells (model first) of a model x loss table; best per row in bold."""
    best = best_per_row(comp.cells, metric)
    failed_pairs = {(f.model, f.loss) for f in comp.failed}
    rows = []
    for model in comp.models:
        row = [f"`{model}`"]
        for loss in comp.losses:
            cell = comp.cells.get((model, loss))
            if cell is None:
                row.append("failed" if (model, loss) in failed_pairs else "—")
                continue
            text = _cell_text(cell, metric)
            if (model, loss) in best:
                text = f"**{text}**"
            if with_p and comp.baseline is not None:
                test = comp.tests.get((model, loss))
                text += " (baseline)" if test is None else (f" ({_fmt_p(test.p)})" if test.n else "")
            row.append(text)
        rows.append(row)
    return rows


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = [[c.replace("|", "\\|") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return lines


def _metric_title(metric: str) -> str:
    label, higher = METRICS[metric]
    return f"{label}, {'higher' if higher else 'lower'} is better"


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
        f"(mean over the classes {', '.join(f'`{c}`' for c in classes_used)}; empty cells left out). "
        "Where a pair has several runs (seeds/folds) the mean is over runs, a case's value is averaged "
        "over the runs that scored it, and `[± s, n runs]` is the std over runs. "
        "Std is the sample std (ddof=1). Best cell per row (model) in **bold**.",
        "",
    ]
    for metric, with_p in ((m, True), (second, False)):
        out += [f"## {_metric_title(metric)}", ""]
        out += _md_table(["model \\ loss", *comp.losses], _grid_rows(comp, metric, with_p))
        if with_p and comp.baseline is not None:
            out += ["", f"p: paired Wilcoxon signed-rank test against `{':'.join(comp.baseline)}` "
                    "(see *Statistical test*)."]
        out.append("")

    out += [f"## Per class: {METRICS[m][0]}", "",
            "Mean over runs ± std over cases; best pair per class in **bold**.", ""]
    higher = METRICS[m][1]
    best_cls: dict[str, float] = {}
    for cls in comp.classes:
        vals = [c.mean(m, cls) for c in comp.cells.values() if not math.isnan(c.mean(m, cls))]
        best_cls[cls] = (max(vals) if higher else min(vals)) if vals else math.nan
    rows = []
    for cell in comp.cells.values():
        row = [f"`{cell.model}`", f"`{cell.loss}`"]
        for cls in comp.classes:
            mean = cell.mean(m, cls)
            text = f"{_fmt(mean, m)} ± {_fmt(cell.std_cases(m, cls), m)}" if not math.isnan(mean) else "—"
            row.append(f"**{text}**" if math.isclose(mean, best_cls[cls], abs_tol=1e-12) else text)
        rows.append(row)
    out += _md_table(["model", "loss", *comp.classes], rows) + [""]

    out += ["## Failed or unfinished runs", ""]
    if comp.failed:
        out += _md_table(["run", "model", "loss", "reason"],
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


def _test_section(comp: Comparison) -> list[str]:
    label = METRICS[comp.metric][0]
    if comp.baseline is None:
        pairs = ", ".join(f"`{c.key}`" for c in comp.cells.values())
        return [f"No baseline: pass `--baseline MODEL:LOSS` (one of {pairs}) to test every cell against it."]
    base = ":".join(comp.baseline)
    lines = [
        f"Paired Wilcoxon signed-rank test (two-sided, `scipy.stats.wilcoxon` defaults) of each pair "
        f"against the baseline `{base}` on the per-case foreground mean {label} (one pair of values "
        "per case; seeds averaged per case). Tested only where both scored the same cases. "
        f"Holm's correction over the {sum(1 for t in comp.tests.values() if t.n)} tested pair(s) is "
        "beside the raw p-value. Median difference: pair minus baseline.",
        "",
    ]
    rows = []
    for (model, loss), test in comp.tests.items():
        rows.append([f"`{model}:{loss}`", str(test.n) if test.n else "",
                     _fmt(test.median_diff, comp.metric) if test.n else "",
                     _fmt_p(test.p), _fmt_p(test.p_holm),
                     ("yes" if test.p_holm < ALPHA else "no") if not math.isnan(test.p_holm) else "",
                     test.note])
    if not rows:
        return [*lines, "Only the baseline pair is present: nothing to test."]
    return lines + _md_table(["pair", "cases", "median diff", "p", "p (Holm)", f"significant at {ALPHA}",
                              "note"], rows)


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    models, losses = comp.models, comp.losses
    label, higher = METRICS[metric]
    grid = np.full((len(models), len(losses)), np.nan)
    for (model, loss), cell in comp.cells.items():
        grid[models.index(model), losses.index(loss)] = cell.mean(metric)
    finite = grid[np.isfinite(grid)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3)
    from matplotlib import colormaps

    cmap = colormaps["viridis" if higher else "viridis_r"].with_extremes(bad="#d9d9d9")
    norm = Normalize(lo, hi)
    fig = Figure(figsize=(1.6 + 1.5 * len(losses), 1.2 + 0.8 * len(models)), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    best = best_per_row(comp.cells, metric)
    failed_pairs = {(f.model, f.loss) for f in comp.failed}
    for i, model in enumerate(models):
        for j, loss in enumerate(losses):
            cell = comp.cells.get((model, loss))
            if cell is None:
                ax.text(j, i, "failed" if (model, loss) in failed_pairs else "—", ha="center", va="center",
                        fontsize=8, color="#555555")
                continue
            value = cell.mean(metric)
            text = f"{_fmt(value, metric)}\n± {_fmt(cell.std_cases(metric), metric)}"
            if len(cell.runs) > 1:
                text += f"\n{len(cell.runs)} runs"
            r, g, b, _ = cmap(norm(value)) if not math.isnan(value) else (0.85, 0.85, 0.85, 1)
            colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour,
                    fontweight="bold" if (model, loss) in best else "normal")
    ax.set_xticks(range(len(losses)), losses, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), models)
    ax.set_xlabel("loss")
    ax.set_ylabel("model")
    ax.set_title(f"Mean {label} over foreground classes\n({'higher' if higher else 'lower'} is better; "
                 "bold: best per row)", fontsize=9)
    fig.colorbar(image, ax=ax, label=label)
    fig.tight_layout()
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png"))


def print_table(comp: Comparison) -> None:
    from rich.console import Console
    from rich.table import Table

    metric = comp.metric
    best = best_per_row(comp.cells, metric)
    failed_pairs = {(f.model, f.loss) for f in comp.failed}
    base = f", p vs {':'.join(comp.baseline)}" if comp.baseline else ""
    table = Table(title=f"{_metric_title(metric)}: mean ± std over cases{base}")
    table.add_column("model \\ loss", style="cyan")
    for loss in comp.losses:
        table.add_column(loss, justify="right")
    for model in comp.models:
        row = []
        for loss in comp.losses:
            cell = comp.cells.get((model, loss))
            if cell is None:
                row.append("[yellow]failed[/yellow]" if (model, loss) in failed_pairs else "[dim]—[/dim]")
                continue
            text = _cell_text(cell, metric)
            test = comp.tests.get((model, loss))
            if comp.baseline is not None:
                text += " (baseline)" if test is None else (f" {_fmt_p(test.p)}" if test.n else "")
            row.append(f"[bold green]{text}[/bold green]" if (model, loss) in best else text)
        table.add_row(model, *row)
    console = Console()
    console.print(table)
    if comp.failed:
        console.print(f"[yellow]{len(comp.failed)} failed or unfinished run(s):[/yellow]")
        for f in comp.failed:
            console.print(f"  {f.name}: {f.reason}", markup=False, highlight=False)


def run_cli(args: Any) -> int:
    """``ctbench report DIRS... [--out DIR] [--baseline MODEL:LOSS] [--metric dice]``."""
    metric = (args.metric or "dice").lower()
    if metric not in METRICS:
        raise CTBenchError(f"--metric {args.metric}: unknown, choose one of {', '.join(METRICS)}", exit_code=2)
    runs, failed = collect(args.dirs)
    comp = build(runs, failed, metric, args.baseline, [str(d) for d in args.dirs])
    out = Path(args.out) if args.out else Path(args.dirs[0])
    written = [atomic_write_text(out / "comparison.md", comparison_md(comp)),
               atomic_write_text(out / "comparison.csv", comparison_csv(comp))]
    if not runs:
        raise CTBenchError(f"no complete run below {', '.join(map(str, args.dirs))}: {len(failed)} failed or "
                           f"unfinished run(s), listed in {written[0]}")
    for m in dict.fromkeys(("dice", "hd95", metric)):
        written.append(write_heatmap(out / f"heatmap_{m}.png", comp, m))
    print_table(comp)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
