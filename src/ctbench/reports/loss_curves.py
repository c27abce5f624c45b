"""``ctbench loss-curves OUT_DIR``: the survey's Figure 9 remade from the implemented losses.

For a large and a small square object, a prediction of the same size slides off the truth: ``k``
object voxels become false negatives and ``k`` background voxels beside the object become false
positives, so ``IoU = (n - k) / (n + k)`` goes from 1 to 0 with false positives and false negatives
growing together. The prediction is soft: predicted foreground has ``P(foreground) = confidence``,
the rest ``1 - confidence`` (0.99). Every loss in ``configs/loss/`` is evaluated on each prediction;
``loss_curves.png`` (two panels; each loss rescaled to [0, 1] over both objects so that shapes
compare), ``loss_curves.csv`` (raw values, one ``loss_NAME`` column per loss) and a table saying which losses fall
monotonically as IoU rises are the output.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctbench.atomic import atomic_write, atomic_write_text

#: Object side lengths in a square image of IMAGE_SIDE voxels: 16 % and 0.25 % of the image.
IMAGE_SIDE = 160
OBJECTS = {"large": 64, "small": 8}
N_IOU = 41
#: P(foreground) of predicted foreground voxels (1 - this elsewhere): a confident network.
CONFIDENCE = 0.99


@dataclass(frozen=True)
class Curve:
    """One object's sweep: IoU, false positives/negatives and each loss's value per prediction."""

    name: str
    size: int
    iou: list[float]
    errors: list[int]
    values: dict[str, list[float]]


def loss_config_dir() -> Path:
    import ctbench

    return Path(ctbench.__file__).parent / "configs" / "loss"


def load_losses() -> dict[str, object]:
    """Every loss config, instantiated as a user's run would (``hydra.utils.instantiate``)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    return {p.stem: instantiate(OmegaConf.load(p)) for p in sorted(loss_config_dir().glob("*.yaml"))}


def sliding_prediction(side: int, errors: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth: a ``side`` x ``side`` square. Prediction: the same square with its ``errors``
    leftmost voxels (column by column) moved to the columns right of it, as if it slid right.
    """
    truth = np.zeros((IMAGE_SIDE, IMAGE_SIDE), dtype=np.int64)
    row, col = (IMAGE_SIDE - side) // 2, (IMAGE_SIDE - 2 * side) // 2
    truth[row : row + side, col : col + side] = 1
    pred = truth.copy()
    lost = pred[row : row + side, col : col + side].T.reshape(-1)  # column-major view
    gained = pred[row : row + side, col + side : col + 2 * side].T.reshape(-1)
    lost[:errors], gained[:errors] = 0, 1
    pred[row : row + side, col : col + side] = lost.reshape(side, side).T
    pred[row : row + side, col + side : col + 2 * side] = gained.reshape(side, side).T
    return truth, pred


def error_counts(n: int, points: int | None = None) -> list[int]:
    """Numbers of swapped voxels ``k`` whose IoU ``(n - k) / (n + k)`` spread evenly over [0, 1]."""
    targets = np.linspace(1.0, 0.0, points or N_IOU)
    return sorted({int(round(n * (1 - t) / (1 + t))) for t in targets})


def sweep(name: str, side: int, losses: dict[str, object], confidence: float = CONFIDENCE) -> Curve:
    """Evaluate every loss on the predictions of one object."""
    import torch

    n = side * side
    logit = math.log(confidence / (1 - confidence))
    errors = error_counts(n)
    values: dict[str, list[float]] = {key: [] for key in losses}
    for k in errors:
        truth, pred = sliding_prediction(side, k)
        fg = torch.from_numpy(np.where(pred == 1, logit, -logit)).float()
        logits = torch.stack([torch.zeros_like(fg), fg])[None]
        target = torch.from_numpy(truth)[None, None]
        with torch.no_grad():
            for key, loss in losses.items():
                values[key].append(float(loss(logits, target)))
    iou = [(n - k) / (n + k) for k in errors]
    return Curve(name, n, iou, errors, values)


def is_monotone(iou: list[float], values: list[float]) -> bool:
    """True if the loss never rises as IoU rises (ties allowed up to float32 noise)."""
    order = np.argsort(iou)
    v = np.asarray(values, dtype=np.float64)[order]
    tolerance = 1e-6 * max(1.0, float(np.abs(v).max()))
    return bool(np.all(np.diff(v) <= tolerance))


def csv_text(curves: list[Curve]) -> str:
    names = list(curves[0].values)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["object", "object_voxels", "iou", "false_positives", "false_negatives"]
    writer.writerow(header + [f"loss_{key}" for key in names])
    for curve in curves:
        for i, (iou, k) in enumerate(zip(curve.iou, curve.errors, strict=True)):
            row = [curve.name, curve.size, f"{iou:.6f}", k, k]
            writer.writerow(row + [f"{curve.values[key][i]:.8g}" for key in names])
    return buf.getvalue()


def rescaled(curves: list[Curve]) -> list[dict[str, np.ndarray]]:
    """Each loss mapped to [0, 1] by its range over all curves (so a small object's flat curve
    stays flat): the losses' scales differ by orders of magnitude, their shapes are what Figure 9
    compares."""
    out: list[dict[str, np.ndarray]] = [{} for _ in curves]
    for key in curves[0].values:
        every = np.concatenate([c.values[key] for c in curves])
        low, span = every.min(), max(float(np.ptp(every)), 1e-12)
        for i, curve in enumerate(curves):
            out[i][key] = (np.asarray(curve.values[key]) - low) / span
    return out


def plot_png(curves: list[Curve]) -> bytes:
    """Two panels (one per object) of each loss, rescaled, against IoU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 5), sharey=True)
    cmap = plt.get_cmap("tab10")
    for ax, curve, values in zip(axes, curves, rescaled(curves), strict=True):
        for i, (key, v) in enumerate(values.items()):
            ax.plot(curve.iou, v, label=key, color=cmap(i % 10), ls=("-", "--")[i // 10], lw=1.6)
        fraction = 100.0 * curve.size / IMAGE_SIDE**2
        ax.set_title(f"{curve.name} object ({curve.size} voxels, {fraction:.2g} % of the image)")
        ax.set_xlabel("IoU of prediction and truth (false positives = false negatives)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss, rescaled to [0, 1] per loss over both objects")
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle(f"Loss against overlap: survey Figure 9 remade from configs/loss/ (confidence {CONFIDENCE})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def print_table(curves: dict[str, Curve]) -> None:
    from rich.console import Console
    from rich.table import Table

    small, large = curves["small"], curves["large"]
    table = Table(title="Is each loss monotone in IoU? (falls as IoU rises, FP = FN)")
    table.add_column("loss")
    table.add_column("small: monotone")
    table.add_column("small: loss(IoU=0) - loss(IoU=1)", justify="right")
    table.add_column("large: monotone")
    for key in small.values:
        mono = is_monotone(small.iou, small.values[key])
        spread = small.values[key][-1] - small.values[key][0]
        table.add_row(
            key,
            "[green]yes[/green]" if mono else "[red]no[/red]",
            f"{spread:.4g}",
            "yes" if is_monotone(large.iou, large.values[key]) else "no",
        )
    Console().print(table)


def run_cli(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir)
    losses = load_losses()
    curves = [sweep(name, side, losses) for name, side in OBJECTS.items()]
    atomic_write_text(out_dir / "loss_curves.csv", csv_text(curves))
    png = plot_png(curves)
    atomic_write(out_dir / "loss_curves.png", lambda fh: fh.write(png))
    print_table({c.name: c for c in curves})
    print(f"wrote {out_dir / 'loss_curves.png'} and {out_dir / 'loss_curves.csv'}")
    return 0
