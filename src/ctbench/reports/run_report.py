"""The report of one run: ``report/per_case.csv``, ``report/summary.json``, ``report/report.md`` with
overlay PNGs, and the per-class table printed with rich (format: ``docs/report-format.md``).

``summary.json`` is written last, atomically, with ``"status": "complete"``: its presence marks a
finished run for ``ctbench report`` and for resumable sweeps.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctbench.atomic import atomic_write, atomic_write_json, atomic_write_text
from ctbench.lesion_metrics import DEFAULT_IOU_THRESHOLD
from ctbench.metrics import summarize, write_per_case_csv

#: Colours of classes 1..N in overlays (liver, spleen, kidney, lesion, ...).
COLOURS = [(0.95, 0.35, 0.2), (0.3, 0.6, 1.0), (0.3, 0.9, 0.4), (1.0, 0.9, 0.1), (0.8, 0.4, 0.9), (0.2, 0.9, 0.9)]


def _fmt(value: Any, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _tolerance(low_high: Sequence[float] | None) -> str:
    """``[lo, hi]`` of the NSD tolerances used, as ``2.0`` or ``2.0-3.5``."""
    if not low_high:
        return "—"
    low, high = low_high
    return f"{low:.1f}" if low == high else f"{low:.1f}-{high:.1f}"


def _overlay_png(sample: Mapping[str, Any], path: Path, window: tuple[float, float],
                 class_names: Sequence[str] = ()) -> None:
    """Axial slice with the most truth foreground: CT, CT + truth, CT + prediction, and a colour key naming the
    foreground ``class_names`` (label 1, 2, ...; labels above 6 share the last colour, as the overlay clips them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nibabel as nib
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    ornt = nib.orientations.io_orientation(sample["affine"])  # show in RAS so left/right read as in Slicer
    ras = {k: nib.orientations.apply_orientation(sample[k], ornt) for k in ("image", "truth", "pred")}
    z = int((ras["truth"] > 0).sum(axis=(0, 1)).argmax())
    cmap = ListedColormap([(0, 0, 0, 0)] + [(*c, 0.55) for c in COLOURS])
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for ax, (title, key) in zip(axes, (("CT", None), ("truth", "truth"), ("prediction", "pred")), strict=True):
        ax.imshow(np.rot90(ras["image"][:, :, z]), cmap="gray", vmin=window[0], vmax=window[1])
        if key:
            ax.imshow(np.rot90(ras[key][:, :, z]), cmap=cmap, vmin=0, vmax=len(COLOURS), interpolation="nearest")
        ax.set_title(f"{sample['case']} {title} (z={z})", fontsize=9)
        ax.axis("off")
    key = [Patch(facecolor=(*COLOURS[min(c, len(COLOURS)) - 1], 0.55), label=name)
           for c, name in enumerate(class_names, start=1)]
    fig.tight_layout(rect=(0, 0.09 if key else 0, 1, 0.97))
    if key:  # below the panels, covering none of them
        fig.legend(handles=key, loc="lower center", ncol=min(len(key), 6), fontsize=8, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))


def _markdown(summary: Mapping[str, Any], overlays: Sequence[str]) -> str:
    lines = [f"# {summary['model']} x {summary['loss']} on {summary['dataset']} ({summary['dims']}D)", "",
             f"{summary['n_cases']} {summary['split']} cases, whole-volume metrics in the label files' own geometry; "
             f"mean Dice **{_fmt(summary['mean_dice'])}**, mean IoU **{_fmt(summary['mean_iou'])}** "
             f"(foreground classes: {', '.join(summary['mean_over_classes'])})"
             + (f"; mean Dice of {', '.join(summary['headline']['classes'])}: "
                f"**{_fmt(summary['headline']['mean_dice'])}**." if summary.get("headline") else "."), "",
             "| class | Dice | IoU | HD95 (mm) | HD95 without misses (mm) | misses | ASSD (mm) | NSD | "
             "NSD tolerance (mm) | sensitivity | precision |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in summary["per_class"].items():
        lines.append(f"| {name} | {_fmt(m.get('dice'))} ± {_fmt(m.get('dice_std'))} | {_fmt(m.get('iou'))} | "
                     f"{_fmt(m.get('hd95'), 1)} | {_fmt(m.get('hd95_nan_dropped'), 1)} | "
                     f"{m.get('hd95_undefined', 0)} | {_fmt(m.get('assd'), 2)} | {_fmt(m.get('nsd'))} | "
                     f"{_tolerance(m.get('nsd_tolerance_mm'))} | {_fmt(m.get('sensitivity'))} | "
                     f"{_fmt(m.get('precision'))} |")
    lines += ["", "HD95/ASSD: a case where exactly one of truth and prediction is empty (a miss or a spurious "
              "structure; counted under *misses*) counts at its image diagonal; *without misses* leaves those "
              "cases out. NSD tolerance: the configured one, at least the largest voxel spacing "
              f"({summary.get('nsd_tolerance_policy', 'not recorded')})."]
    lines += _lesion_lines(summary.get("lesion") or {}) + _convergence_lines(summary.get("convergence"))
    lines += ["", f"Trained {summary.get('epochs', '—')} epochs in {_fmt(summary.get('train_seconds'), 0)} s; "
              f"{summary.get('params', 0):,} parameters; seed {summary.get('seed')}, fold {summary.get('fold')}, "
              f"commit {summary.get('git_commit', 'unknown')}{_changes(summary.get('source_changes'))}"
              f"{_segments(summary.get('code_segments'))}.", "",
              f"Empty-case policy: {summary['empty_policy']}", "", "Per case: `per_case.csv`.", ""]
    lines += [f"![{name}]({name})" for name in overlays]
    return "\n".join(lines) + "\n"


def _lesion_lines(block: Mapping[str, Any]) -> list[str]:
    """report.md's lesion-wise table (one row per lesion class), empty without a lesion class."""
    if not block.get("per_class"):
        return []
    lines = ["", f"Lesion-wise (components matched one-to-one at IoU >= {block['iou_threshold']}; means over the "
             "cases where each is defined):", "",
             "| class | lesions | matched | FP | recall | precision | F1 | F1 (IoU 0.5) | lesion Dice | "
             "FP per lesion-free case | recall < 6 mm | 6-10 mm | > 10 mm |", "|---|" + "---|" * 12]
    for name, m in block["per_class"].items():
        lines.append(f"| {name} | {m['lesions_truth']} | {m['lesions_matched']} | {m['lesions_fp']} | "
                     f"{_fmt(m['recall'])} | {_fmt(m['precision'])} | {_fmt(m['f1'])} | {_fmt(m['f1_iou50'])} | "
                     f"{_fmt(m['lesion_dice'])} | {_fmt(m['fp_per_lesion_free_case'], 2)} | "
                     f"{_fmt(m['recall_small'])} | {_fmt(m['recall_medium'])} | {_fmt(m['recall_large'])} |")
    return lines


def _changes(files: list[str] | None) -> str:
    """`` with uncommitted changes to N source files (a, b, ...)`` when the run was not the commit's."""
    if not files:
        return ""
    shown = ", ".join(f"`{f}`" for f in files[:4]) + (f" and {len(files) - 4} more" if len(files) > 4 else "")
    return f" with uncommitted changes to {len(files)} source file{'s' if len(files) > 1 else ''} ({shown})"


def _segments(segments: list[dict[str, Any]] | None) -> str:
    """``; resumed with other code or on another CPU: N versions from epochs a, b`` for a run trained across
    code versions or kinds of CPU."""
    if not segments or len(segments) < 2:
        return ""
    return (f"; resumed with other code or on another CPU: {len(segments)} versions from epochs "
            f"{', '.join(str(s.get('from_epoch')) for s in segments)} (`provenance.json`: `code_segments`)")


def _convergence_lines(block: Mapping[str, Any] | None) -> list[str]:
    """report.md's convergence sentence, empty for a run that was not trained here (``ctbench eval``)."""
    if not block:
        return []
    return ["", f"Convergence: **{block['verdict']}** (learning-rate schedule "
            f"{'completed' if block['schedule_completed'] else 'not completed'}; best {block['metric']} "
            f"{_fmt(block['best_last'])} in the last 20 % of epochs vs {_fmt(block['best_before'])} before, "
            f"plateau {block['plateau']}){': ' + block['note'] if block.get('note') else ''}. Learning curve: "
            "`progress.png`."]


def print_table(summary: Mapping[str, Any]) -> None:
    """The per-class table of a run, with rich."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['model']} x {summary['loss']} — {summary['n_cases']} {summary['split']} cases "
                        f"({summary['dataset']}, {summary['dims']}D)")
    for col in ("class", "Dice", "IoU", "HD95 mm", "misses", "NSD"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, m in summary["per_class"].items():
        table.add_row(name, f"{_fmt(m.get('dice'))} ± {_fmt(m.get('dice_std'))}", _fmt(m.get("iou")),
                      _fmt(m.get("hd95"), 1), str(m.get("hd95_undefined", 0)), _fmt(m.get("nsd")))
    table.add_section()
    table.add_row("mean", _fmt(summary["mean_dice"]), _fmt(summary["mean_iou"]), _fmt(summary.get("mean_hd95"), 1),
                  "", "")
    if summary.get("headline"):
        table.add_row(f"mean of {', '.join(summary['headline']['classes'])}", _fmt(summary["headline"]["mean_dice"]),
                      "", "", "", "")
    table.caption = "HD95: a missed or spurious structure (misses) counts at the image diagonal" + (
        f"; convergence: {summary['convergence']['verdict']}" if summary.get("convergence") else "")
    Console().print(table)


def write_run_report(report_dir: str | Path, rows: list[dict], class_names: Sequence[str], meta: Mapping[str, Any],
                     overlays: Sequence[Mapping[str, Any]] = (), window: tuple[float, float] = (-160, 240),
                     headline_classes: Sequence[str] = (),
                     lesion_iou: float = DEFAULT_IOU_THRESHOLD) -> dict[str, Any]:
    """Write the report files; returns the summary dict.

    Args:
        report_dir: ``RUN_DIR/report``.
        rows: per-case rows from :func:`ctbench.metrics.case_metrics` with ``case`` added.
        class_names: foreground class names in label order.
        meta: run facts for ``summary.json`` (model, loss, dataset, dims, seed, fold, epochs, ...).
        overlays: samples ``{case, image, truth, pred, affine}`` to draw.
        window: HU display window of the overlays.
        headline_classes: classes whose mean Dice is also reported on its own (``headline``), e.g. the
            organs without the small lesion class.
        lesion_iou: IoU at which lesions were matched (``metrics.lesion_iou``), for the ``lesion`` block.
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "summary.json").unlink(missing_ok=True)  # an old summary must not vouch for new files
    write_per_case_csv(rows, report_dir / "per_case.csv")
    summary = {"status": "running", **meta, **summarize(rows, class_names, lesion_iou)}
    if headline_classes:
        dice = [summary["per_class"][c]["dice"] for c in headline_classes]
        summary["headline"] = {"classes": list(headline_classes),
                               "mean_dice": float(np.mean(dice)) if None not in dice else None}
    names = []
    for sample in overlays:
        name = f"overlay_{sample['case']}.png"
        _overlay_png(sample, report_dir / name, window, class_names)
        names.append(name)
    atomic_write_text(report_dir / "report.md", _markdown(summary, names))
    summary["status"] = "complete"
    atomic_write_json(report_dir / "summary.json", summary)
    return summary
