"""The run-folder contract (``docs/report-format.md``): where a run keeps its report and checkpoints,
whether it is complete, and reading its summary and per-case table.

One place for what ``ctbench train`` (skip a complete job, resume from ``last.ckpt``), ``ctbench report``
and the end-of-sweep status need to know about a run folder. A run folder is either a Hydra job folder
(``RUN/report/summary.json``, ``RUN/checkpoints/``) or a bare report folder as ``ctbench score --out DIR``
writes it (``DIR/summary.json`` beside ``DIR/per_case.csv``). Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from ctbench.errors import CTBenchError

REPORT_DIR = "report"
SUMMARY_FILE = "summary.json"
PER_CASE_FILE = "per_case.csv"
CHECKPOINT_DIR = "checkpoints"
#: ``summary.json`` ``status`` of a finished run; it is written last, so its presence vouches for the rest.
COMPLETE = "complete"


class RunFolderError(CTBenchError):
    """A run folder whose report is missing, unfinished or unreadable; the message says which and why."""


def report_dir(run_dir: str | os.PathLike) -> Path:
    """``RUN/report``, or ``RUN`` itself when it is a bare report folder (``ctbench score --out RUN``)."""
    run_dir = Path(run_dir)
    nested = run_dir / REPORT_DIR
    if (nested / SUMMARY_FILE).is_file() or not (run_dir / SUMMARY_FILE).is_file():
        return nested
    return run_dir


def summary_path(run_dir: str | os.PathLike) -> Path:
    return report_dir(run_dir) / SUMMARY_FILE


def per_case_path(run_dir: str | os.PathLike) -> Path:
    return report_dir(run_dir) / PER_CASE_FILE


def checkpoint_path(run_dir: str | os.PathLike, name: str = "last") -> Path:
    """``RUN/checkpoints/NAME.ckpt`` (``last`` or ``best``)."""
    return Path(run_dir) / CHECKPOINT_DIR / f"{name}.ckpt"


def _relative(path: Path, run_dir: str | os.PathLike) -> str:
    try:
        return path.relative_to(run_dir).as_posix()
    except ValueError:
        return str(path)


def read_summary(run_dir: str | os.PathLike, complete: bool = True) -> dict[str, Any]:
    """The run's ``summary.json`` as a dict.

    Raises:
        RunFolderError: the file is missing or not a JSON object, or (with ``complete``) its ``status``
            is not ``"complete"``; the message names the file and the reason (the summary's own
            ``error``/``reason``/``message`` field for a failed run).
    """
    path = summary_path(run_dir)
    rel = _relative(path, run_dir)
    if not path.is_file():
        raise RunFolderError(f"{rel} missing")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFolderError(f"unreadable {rel} ({err})") from None
    if not isinstance(summary, dict):
        raise RunFolderError(f"unreadable {rel} (not a JSON object)")
    reason = incomplete_reason(summary)
    if complete and reason:
        raise RunFolderError(reason)
    return summary


def incomplete_reason(summary: dict[str, Any]) -> str:
    """Why a summary does not mark a finished run (its status and error message), or ``""`` if it does."""
    status = summary.get("status")
    if status == COMPLETE:
        return ""
    detail = next((str(summary[k]) for k in ("error", "reason", "message") if summary.get(k)), "")
    reason = f"status {status!r}" if status is not None else f"no status in {SUMMARY_FILE}"
    return f"{reason}: {detail}" if detail else reason


def is_complete(run_dir: str | os.PathLike) -> bool:
    """True when the run's ``summary.json`` is readable and says ``"status": "complete"``."""
    try:
        read_summary(run_dir)
    except RunFolderError:
        return False
    return True


def read_per_case(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The run's ``per_case.csv`` rows (:func:`ctbench.metrics.read_per_case_csv`).

    Raises:
        RunFolderError: the file is missing, unreadable, lacks a required column or has no rows.
    """
    from ctbench.metrics import read_per_case_csv

    path = per_case_path(run_dir)
    rel = _relative(path, run_dir)
    if not path.is_file():
        raise RunFolderError(f"{rel} missing")
    try:
        rows = read_per_case_csv(path)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFolderError(f"{rel}: {err}") from None
    if not rows:
        raise RunFolderError(f"{rel} has no rows")
    return rows


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


def read_checkpoint_progress(ckpt: str | os.PathLike) -> dict[str, int] | None:
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
    return {k: data[k] for k in ("epoch", "global_step") if isinstance(data.get(k), int)}


def checkpoint_note(run_dir: str | os.PathLike) -> str:
    """How far an unfinished run got: ``last.ckpt at epoch 3, step 120``, or ``no checkpoint``."""
    ckpt = checkpoint_path(run_dir)
    if not ckpt.is_file():
        return "no checkpoint"
    progress = read_checkpoint_progress(ckpt)
    if progress is None or progress.get("epoch") is None:
        return "last.ckpt present, epoch unreadable"
    note = f"last.ckpt at epoch {progress['epoch']}"
    return f"{note}, step {progress['global_step']}" if progress.get("global_step") is not None else note


#: what a Hydra job folder holds before its task does anything: Hydra's config copy, the run config and
#: provenance the task writes first, and the job's log file
SETUP_FILES = frozenset({".hydra", "resolved_config.yaml", "provenance.json"})


def refused_at_setup(run_dir: str | os.PathLike) -> bool:
    """True for a job folder whose command was refused before it started: nothing but :data:`SETUP_FILES` and
    ``*.log`` files, and a log that ends in the one-line refusal (``CTBenchError``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return False
    entries = list(run_dir.iterdir())
    if any(p.name not in SETUP_FILES and p.suffix != ".log" for p in entries):
        return False
    logs = [p for p in entries if p.suffix == ".log" and p.is_file()]
    return any("CTBenchError" in p.read_text(errors="replace")[-4000:] for p in logs)
