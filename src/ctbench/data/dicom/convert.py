"""``ctbench convert DICOM_DIR OUT_DIR``: one ``NNN_S<SeriesNumber>_<description>.nii.gz`` + ``.json``
sidecar per CT series, a rich summary table, exit 1 when nothing was converted."""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctbench.data.dicom.decode import load_hu
from ctbench.data.dicom.deid import identifier_strings, redact, scrub_text
from ctbench.data.dicom.headers import relative
from ctbench.data.dicom.outputs import build_sidecar, output_stem
from ctbench.data.dicom.series import (
    DICOM_SUFFIXES,
    PROGRESS_MIN_FILES,
    DicomScan,
    DicomSeries,
    scan_dicom_tree,
)
from ctbench.data.dicom.volume import series_to_nifti, write_nifti
from ctbench.errors import CTBenchError


@dataclass
class SeriesOutcome:
    series: DicomSeries
    status: str  # "written", "forced", "problems", "skipped", "failed"
    message: str = ""
    nifti: Path | None = None
    sidecar: Path | None = None


@dataclass
class ConvertResult:
    scan: DicomScan
    outcomes: list[SeriesOutcome]

    @property
    def written(self) -> list[SeriesOutcome]:
        return [o for o in self.outcomes if o.nifti is not None]


def _check_scan(scan: DicomScan) -> None:
    """One line for an empty folder, a folder without DICOM files or without CT series."""
    root = scan.root
    if scan.n_files == 0:
        raise CTBenchError(f"{root}: empty folder, no files to convert")
    if not scan.series:
        example = "; ".join(f"{relative(p, root)}: {why}" for p, why in scan.bad_files[:3])
        raise CTBenchError(f"no DICOM files under {root}: {scan.n_files} file(s) checked ({example})")
    if not any(s.is_ct_volume for s in scan.series):
        found = Counter(s.skip_reason or s.modality for s in scan.series)
        text = ", ".join(f"{why} x{n}" if n > 1 else why for why, n in found.items())
        raise CTBenchError(f"no CT image series under {root}, nothing to convert (found: {text})")


def _convert_series(series: DicomSeries, stem: str, out: Path, force: bool, keep_uids: bool) -> SeriesOutcome:
    from ctbench.atomic import atomic_write_json

    if not series.can_convert(force):
        blocking = [p for p in series.problems if not (force and p.forcible)]
        hint = " (--force writes it anyway)" if all(p.forcible for p in blocking) and not force else ""
        return SeriesOutcome(series, "problems", "; ".join(p.message for p in blocking) + hint)
    forced = bool(series.problems)
    try:
        volume = load_hu(series, force=force)
        nii_path, json_path = out / f"{stem}.nii.gz", out / f"{stem}.json"
        write_nifti(nii_path, series_to_nifti(series, force=force, volume=volume))
        atomic_write_json(json_path, build_sidecar(series, volume, forced=forced, keep_uids=keep_uids))
    except CTBenchError as err:
        return SeriesOutcome(series, "failed", str(err))
    msg = nii_path.name + ("; forced despite: " + "; ".join(p.message for p in series.problems) if forced else "")
    return SeriesOutcome(series, "forced" if forced else "written", msg, nifti=nii_path, sidecar=json_path)


def convert_tree(dicom_dir: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False,
                 keep_uids: bool = False, console: Any = None, progress: bool = True) -> ConvertResult:
    """Convert every CT series under ``dicom_dir`` into ``out_dir``; see :func:`run_cli` for the messages.

    Raises :class:`CTBenchError` for an empty folder, a folder without DICOM files or without CT series.
    """
    root, out = Path(dicom_dir), Path(out_dir)
    scan = scan_dicom_tree(root, progress=progress, exclude=out if out.exists() else None, console=console)
    _check_scan(scan)
    outcomes: list[SeriesOutcome] = []
    todo = [s for s in scan.series if s.is_ct_volume and s.can_convert(force)]
    bar = None
    if progress and sum(s.n_slices for s in todo) >= PROGRESS_MIN_FILES:
        from rich.progress import Progress

        bar = Progress(console=console, transient=True)
        bar.start()
        task = bar.add_task("converting CT series", total=len(todo))
    try:
        index = 0
        for series in scan.series:
            if not series.is_ct_volume:
                outcomes.append(SeriesOutcome(series, "skipped", series.skip_reason or ""))
                continue
            index += 1
            outcomes.append(_convert_series(series, output_stem(series, index), out, force, keep_uids))
            if bar is not None and outcomes[-1].status != "problems":
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return ConvertResult(scan=scan, outcomes=outcomes)


def print_summary(result: ConvertResult, console: Any) -> None:
    """The rich summary table of a conversion, then one line per file that is not usable DICOM; every line has
    the tree's identifiers and dates redacted (a folder named after the patient is printed as ``[removed]``)."""
    from rich.table import Table

    identifiers = identifier_strings(h for o in result.outcomes for h in o.series.headers)

    table = Table(title=f"ctbench convert: {len(result.written)} of "
                        f"{sum(o.series.is_ct_volume for o in result.outcomes)} CT series written",
                  show_lines=False)
    for col in ("series", "modality", "files", "size", "spacing mm", "result"):
        table.add_column(col, overflow="fold")
    styles = {"written": "green", "forced": "yellow", "problems": "red", "failed": "red", "skipped": "dim"}
    for o in result.outcomes:
        s = o.series
        number = "?" if s.series_number is None else str(s.series_number)
        desc = scrub_text(s.description, identifier_strings(s.headers)) if s.description else ""
        geo = s.geometry
        size = "x".join(map(str, geo.shape)) if geo else "-"
        spacing = "x".join(f"{v:.3g}" for v in geo.spacing) if geo else "-"
        table.add_row(f"S{number} {desc}".strip(), s.modality, str(s.n_slices), size, spacing,
                      f"[{styles[o.status]}]{o.status}[/]: {redact(o.message, identifiers)}")
    console.print(table)
    # one line per file that looks like DICOM (a DICOM ending, no ending, corrupt, empty); a count for the rest
    looks_dicom = [(p, why) for p, why in result.scan.bad_files
                   if why != "not a DICOM file" or p.suffix.lower() in DICOM_SUFFIXES or not p.suffix]
    others = Counter(("".join(p.suffixes[-2:]) if p.suffix else p.name).lower()
                     for p, why in result.scan.bad_files if (p, why) not in looks_dicom)
    for path, why in looks_dicom[:20]:
        console.print(redact(f"not DICOM: {relative(path, result.scan.root)}: {why}", identifiers), markup=False,
                      highlight=False)
    if len(looks_dicom) > 20:
        console.print(f"... and {len(looks_dicom) - 20} more files that are not DICOM")
    if others:
        text = ", ".join(f"{ext} x{n}" for ext, n in others.most_common(8))
        console.print(f"ignored {sum(others.values())} other non-DICOM file(s): {text}", markup=False, highlight=False)


def run_cli(args: Any) -> int:
    """``ctbench convert DICOM_DIR OUT_DIR [--force] [--keep-uids]``: 0 when at least one series was written."""
    from rich.console import Console

    console = Console(highlight=False)
    result = convert_tree(args.dicom_dir, args.out_dir, force=bool(getattr(args, "force", False)),
                          keep_uids=bool(getattr(args, "keep_uids", False)), console=console)
    print_summary(result, console)
    if not result.written:
        identifiers = identifier_strings(h for o in result.outcomes for h in o.series.headers)
        reasons = [redact(f"{o.series.label}: {o.message}", identifiers) for o in result.outcomes
                   if o.status in ("problems", "failed")]
        print(f"ctbench: error: nothing converted: {reasons[0] if reasons else 'no CT series'}"
              + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""), file=sys.stderr)
        return 1
    return 0
