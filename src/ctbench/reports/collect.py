"""Find run folders below the folders given to ``ctbench report`` and read them into runs and cells.

A run folder is read through :mod:`ctbench.run_folder` (the one contract for ``summary.json``,
``per_case.csv`` and checkpoints). A complete run becomes a :class:`Run`; anything else becomes a
:class:`FailedRun` with its reason (the summary's status, how far ``last.ckpt`` got, the last error
line of the job's log). Runs of one (model, loss) pair (seeds, folds) form a :class:`Cell`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctbench import run_folder
from ctbench.errors import CTBenchError
from ctbench.metrics import with_worst_case

#: Metrics a table can show: name -> (label, higher is better).
METRICS: dict[str, tuple[str, bool]] = {
    "dice": ("Dice", True),
    "iou": ("IoU", True),
    "nsd": ("NSD", True),
    "sensitivity": ("Sensitivity", True),
    "precision": ("Precision", True),
    "hd95": ("HD95 (mm)", False),
    "assd": ("ASSD (mm)", False),
    "hd95_nan_dropped": ("HD95 without misses (mm)", False),
    "assd_nan_dropped": ("ASSD without misses (mm)", False),
    "detection": ("Lesion detection", True),
}
#: ``detection``: the case's truth components (lesions) that any predicted voxel touches, as a fraction of
#: its truth components (``lesions_detected / lesions_truth`` of per_case.csv); undefined (NaN) without any.
DERIVED = {"detection": ("lesions_detected", "lesions_truth")}
#: ``NAME_nan_dropped``: the per_case.csv column NAME with a miss's empty cell left empty (not the diagonal).
NAN_DROPPED = "_nan_dropped"
#: Folders a search never enters (Hydra's and submitit's bookkeeping, logs, checkpoints).
_SKIP_DIRS = {"checkpoints", "tensorboard", "lightning_logs", "__pycache__"}


def nanmean(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return math.fsum(vals) / len(vals) if vals else math.nan


def nanstd(values: Iterable[float]) -> float:
    """Sample standard deviation (ddof=1) of the non-NaN values; NaN for fewer than two."""
    vals = [v for v in values if not math.isnan(v)]
    if len(vals) < 2:
        return math.nan
    mean = math.fsum(vals) / len(vals)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


@dataclass
class Run:
    """One complete run: its summary, its Hydra overrides and its per-case, per-class metric values."""

    name: str
    path: Path
    model: str
    loss: str
    summary: dict[str, Any]
    classes: list[str]
    mean_over: list[str]
    #: metric -> {(case, class): value}; HD95/ASSD of a missed or spurious structure at the worst case,
    #: NaN where a value is undefined.
    values: dict[str, dict[tuple[str, str], float]]
    overrides: dict[str, str] = field(default_factory=dict)
    #: :meth:`attribute`'s answers: a report matches every claim's selectors against every run, and reading
    #: the key from the config file each time was most of ``ctbench study report``'s time
    _attributes: dict[str, str | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def cases(self) -> list[str]:
        return list(dict.fromkeys(case for case, _ in next(iter(self.values.values()))))

    def class_mean(self, metric: str, cls: str) -> float:
        """Mean over cases of one class (NaN cells left out)."""
        return nanmean(v for (_, c), v in self.values.get(metric, {}).items() if c == cls)

    def score(self, metric: str) -> float:
        """The run's foreground mean: mean over classes of the per-class means over cases."""
        return nanmean(self.class_mean(metric, cls) for cls in self.mean_over)

    def case_values(self, metric: str, cls: str | None = None) -> dict[str, float]:
        """Per case: the value of ``cls``, or the foreground mean over classes when ``cls`` is None."""
        table = self.values.get(metric, {})
        out: dict[str, float] = {}
        for case in self.cases:
            if cls is None:
                out[case] = nanmean(table.get((case, c), math.nan) for c in self.mean_over)
            elif (case, cls) in table:
                out[case] = table[(case, cls)]
        return out

    def attribute(self, key: str) -> str | None:
        """A run's value for a claim selector, as text: ``model``/``loss``, a ``summary.json`` field, a Hydra
        override (``postprocess``, ``model.pretrained``, ...), else a key of the run's config (dotted, e.g.
        ``study.tag``, ``task_name``; a null value reads ``null``)."""
        if key not in self._attributes:
            self._attributes[key] = self._read_attribute(key)
        return self._attributes[key]

    def with_override(self, key: str, value: str) -> Run:
        """The same run read as if ``key=value`` had been given on its command line."""
        return dataclasses.replace(self, overrides={**self.overrides, key: value})

    def _read_attribute(self, key: str) -> str | None:
        if key == "model":
            return self.model
        if key == "loss":
            return self.loss
        if key in self.summary and not isinstance(self.summary[key], (dict, list)):
            return str(self.summary[key])
        if key in self.overrides:
            return self.overrides[key]
        return config_value(self.path, key)


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
    """All complete runs of one group (a (model, loss) pair, or a claim's side): seeds, folds."""

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
            return nanmean(run.score(metric) for run in self.runs)
        return nanmean(run.class_mean(metric, cls) for run in self.runs)

    def std_runs(self, metric: str) -> float:
        """Sample standard deviation over runs of the run scores; NaN for fewer than two runs."""
        return nanstd([run.score(metric) for run in self.runs])

    def case_values(self, metric: str, cls: str | None = None) -> dict[str, float]:
        """Per case, the runs' per-case values averaged over the runs (seeds) that scored the case."""
        per_case: dict[str, list[float]] = {}
        for run in self.runs:
            for case, value in run.case_values(metric, cls).items():
                per_case.setdefault(case, []).append(value)
        return {case: nanmean(vals) for case, vals in per_case.items()}

    def case_seed_sd(self, metric: str, cls: str | None = None) -> dict[str, float]:
        """Per case, the sample standard deviation of the runs' per-case values (how much the case's score
        moves with the seed); only cases scored by two or more runs."""
        per_case: dict[str, list[float]] = {}
        for run in self.runs:
            for case, value in run.case_values(metric, cls).items():
                per_case.setdefault(case, []).append(value)
        return {case: nanstd(vals) for case, vals in per_case.items() if len(vals) > 1}

    def std_cases(self, metric: str, cls: str | None = None) -> float:
        return nanstd(list(self.case_values(metric, cls).values()))


def is_run_dir(path: Path) -> bool:
    """A folder with a report, or a Hydra train/eval job folder (finished or not)."""
    if (path / run_folder.REPORT_DIR / run_folder.SUMMARY_FILE).is_file():
        return True
    if (path / run_folder.SUMMARY_FILE).is_file() and (path / run_folder.PER_CASE_FILE).is_file():
        return True  # `ctbench score --out DIR` output, or a report/ folder given directly
    if (path / ".hydra").is_dir() and not run_folder.refused_at_setup(path):
        # A Hydra job folder without a report: an unfinished run, unless it is a predict/bench job.
        has_train_log = any((path / f"{job}.log").exists() for job in ("train", "eval"))
        other_job = any((path / name).exists() for name in ("predict.log", "bench.log", "benchmark.json"))
        return has_train_log or (path / run_folder.CHECKPOINT_DIR).is_dir() or not other_job
    return False


def find_run_dirs(folder: Path) -> list[Path]:
    """Every run folder at or below ``folder``, sorted; a run's own subfolders are not searched."""
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(folder):
        path = Path(dirpath)
        if is_run_dir(path):
            found.append(path)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
    return sorted(found)


def config_value(path: Path, key: str) -> str | None:
    """``key`` (dotted) of a run's config as text: ``resolved_config.yaml`` (train), else Hydra's
    ``.hydra/config.yaml`` (eval); ``null`` for a null value, None when absent or not readable."""
    from omegaconf import OmegaConf

    for name in ("resolved_config.yaml", ".hydra/config.yaml"):
        file = path / name
        if not file.is_file():
            continue
        try:
            value = OmegaConf.select(_load_config(str(file)), key, default=_ABSENT,
                                     throw_on_resolution_failure=False)
        except Exception:  # a damaged file only costs the selector
            return None
        if value is _ABSENT or OmegaConf.is_config(value):
            return None
        return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return None


_ABSENT = object()


def config_list(path: Path, key: str) -> list[float]:
    """A numeric list of a run's config (e.g. ``dataset.preprocessing.spacing``), [] when absent or not numbers."""
    from omegaconf import OmegaConf

    for name in ("resolved_config.yaml", ".hydra/config.yaml"):
        file = path / name
        if not file.is_file():
            continue
        try:
            value = OmegaConf.select(_load_config(str(file)), key, default=None, throw_on_resolution_failure=False)
            return [float(v) for v in OmegaConf.to_container(value)] if OmegaConf.is_list(value) else []
        except Exception:  # a damaged file only costs the default margin
            return []
    return []


@functools.lru_cache(maxsize=256)
def _load_config(file: str) -> Any:
    from ctbench.safe_yaml import load_config

    return load_config(file)


def hydra_overrides(path: Path) -> dict[str, str]:
    """``key=value`` command-line overrides of a Hydra job (``.hydra/overrides.yaml``)."""
    overrides = path / ".hydra" / "overrides.yaml"
    if not overrides.is_file():
        return {}
    try:
        from ctbench.safe_yaml import load_yaml

        items = load_yaml(overrides) or []
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
        name = folder.parent.name if folder.name == run_folder.REPORT_DIR else folder.name
        return name or str(folder)
    rel = path.relative_to(folder).as_posix()
    return f"{folder.name}/{rel}" if prefix_folder else rel


_LOG_PREFIX = re.compile(r"^(\[[^\]]*\])+\s*(-\s*)?")


def last_error_line(path: Path, max_bytes: int = 1 << 20) -> str:
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


def _value(row: dict[str, Any], metric: str) -> float:
    """One per_case.csv row's value of a :data:`METRICS` name (misses at the worst case, see there)."""
    if metric in DERIVED:
        part, whole = (float(row[k]) if row.get(k) not in (None, "") else math.nan for k in DERIVED[metric])
        return part / whole if whole > 0 else math.nan
    if metric.endswith(NAN_DROPPED):
        return float(row[metric.removesuffix(NAN_DROPPED)])
    return with_worst_case(row, metric)


def numeric_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The per_case.csv columns (besides ``case``/``class``) whose every non-empty cell is a number."""
    out = []
    for column in rows[0] if rows else ():
        if column in ("case", "class"):
            continue
        try:
            [float(r[column]) for r in rows if r.get(column) not in (None, "")]
        except (TypeError, ValueError):
            continue
        out.append(column)
    return out


def read_run(path: Path, name: str) -> Run | FailedRun:
    """Read one run folder: a :class:`Run` when its report is complete, else a :class:`FailedRun`."""
    overrides = hydra_overrides(path)
    model, loss = overrides.get("model", "?"), overrides.get("loss", "?")

    def failed(reason: str) -> FailedRun:
        log = last_error_line(path)
        return FailedRun(name, path, model, loss, f"{reason}; log: {log}" if log else reason)

    if not run_folder.summary_path(path).is_file():
        return failed(f"no report ({run_folder.checkpoint_note(path)})")
    try:
        summary = run_folder.read_summary(path, complete=False)
    except run_folder.RunFolderError as err:
        return failed(str(err))
    model = str(summary.get("model") or (path.name if model == "?" else model))
    loss = str(summary.get("loss") or (loss if loss != "?" else "-"))
    if run_folder.incomplete_reason(summary):
        return failed(run_folder.incomplete_reason(summary))
    try:
        rows = run_folder.read_per_case(path)
    except run_folder.RunFolderError as err:
        return failed(str(err))

    metrics = [m for m in METRICS if (DERIVED.get(m, (m,))[0]).removesuffix(NAN_DROPPED) in rows[0]]
    columns = [c for c in numeric_columns(rows) if c not in metrics]  # e.g. lesion_f1 for a claim's metric
    values: dict[str, dict[tuple[str, str], float]] = {m: {} for m in metrics + columns}
    classes: list[str] = []
    for row in rows:
        key = (str(row["case"]), str(row["class"]))
        if key[1] not in classes:
            classes.append(key[1])
        for m in metrics:
            values[m][key] = _value(row, m)
        for c in columns:
            values[c][key] = float(row[c]) if row.get(c) not in (None, "") else math.nan
    listed = summary.get("mean_over_classes")
    mean_over = [c for c in listed if c in classes] if isinstance(listed, list) else []
    return Run(name, path, model, loss, summary, classes, mean_over or list(classes), values, overrides)


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
    """Runs grouped by (model, loss), sorted."""
    cells: dict[tuple[str, str], Cell] = {}
    for run in runs:
        cells.setdefault((run.model, run.loss), Cell(run.model, run.loss)).runs.append(run)
    return dict(sorted(cells.items()))
