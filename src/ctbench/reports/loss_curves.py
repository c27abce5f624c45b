"""``ctbench loss-curves OUT_DIR``: the survey's Figure 9 (loss against IoU), remade and widened.

Taghanaki et al. (2019) plot each loss against the IoU of a prediction for a large and a small object
without saying how the predictions were made. Here the predictions form *paths*: along a path the
errors grow from none to IoU ~ 0 while everything else stays fixed, so a loss that tracks overlap
falls monotonically as IoU rises along every path. A path is one combination of

- an object (:data:`OBJECTS`): a square of 16 %, 0.25 % or 0.01 % of a :data:`IMAGE_SIDE`-square image;
- a confidence (:data:`CONFIDENCES`): predicted foreground has ``P(foreground) = c``, the rest ``1 - c``;
  ``hard`` is ``c = 1 - 1e-6`` (exactly 0 and 1 would make the log-losses infinite);
- a false-positive share of the errors (:data:`FP_SHARES`): ``FP = s E`` and ``FN = (1 - s) E`` for
  ``E`` errors, the false negatives taken from the object's boundary inwards and the false positives
  from the nearest background outwards (erosion- and dilation-like errors, ties in raster order), so
  ``IoU = (n - FN) / (n + FP)``; with only false positives IoU stops where the image is full;
- the boundary (:data:`BLUR_SIGMA`): ``sharp``, or the probability map blurred by a Gaussian;
- logit noise (:data:`NOISE_SIGMA`): none, or Gaussian noise added to the logit of every voxel, one
  seeded noise field per path (:data:`NOISE_SEEDS`), the same at every point of the path.

The x axis is the IoU of the hard prediction that the path perturbs. Every loss in ``configs/loss/``
is evaluated on each prediction. Outputs: ``loss_curves.csv`` (one row per prediction, one
``loss_NAME`` column per loss), ``loss_monotone.csv`` (one row per loss and path: monotone or not,
and the loss's rise from IoU 1 to the path's lowest IoU), ``loss_curves.png`` (per loss, the median
and interquartile band over paths of the raw loss value against IoU, per object) and a printed
table of the fraction of monotone paths per loss and object.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctbench.atomic import atomic_write, atomic_write_text

#: Side of the square image in pixels.
IMAGE_SIDE = 100
#: Object side lengths: 16 %, 0.25 % and 0.01 % of the image.
OBJECTS = {"large": 40, "small": 5, "tiny": 1}
#: P(foreground) of predicted foreground; None is "hard" (:data:`HARD`).
CONFIDENCES: tuple[float | None, ...] = (0.6, 0.8, 0.9, 0.99, None)
HARD = 1.0 - 1e-6
FP_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Gaussian sigma (pixels) of the blurred-boundary variant; 0 is the sharp one.
BLUR_SIGMA = (0.0, 1.5)
#: Standard deviation of the logit noise; one path per seed, plus the noise-free path.
NOISE_SIGMA = 1.0
NOISE_SEEDS = (0, 1)
#: Target IoU values along a path (distinct error counts only).
IOU_TARGETS = np.linspace(1.0, 0.0, 11)
#: IoU bins of the plot's median and interquartile band.
IOU_BINS = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class PredictionPath:
    """One path: an object and the fixed properties of its predictions."""

    object: str
    side: int
    confidence: float | None
    fp_share: float
    blur: float
    noise_seed: int | None

    @property
    def label(self) -> str:
        conf = "hard" if self.confidence is None else f"{self.confidence:g}"
        noise = "none" if self.noise_seed is None else f"seed {self.noise_seed}"
        return f"{self.object} c={conf} fp={self.fp_share:g} blur={self.blur:g} noise={noise}"


@dataclass
class PathValues:
    """A path's predictions: IoU, false positives, false negatives and each loss's value per prediction."""

    path: PredictionPath
    iou: list[float]
    fp: list[int]
    fn: list[int]
    values: dict[str, list[float]]


def loss_config_dir() -> Path:
    import ctbench

    return Path(ctbench.__file__).parent / "configs" / "loss"


def load_losses() -> dict[str, object]:
    """Every loss config, instantiated as a user's run would (``hydra.utils.instantiate``)."""
    from hydra.utils import instantiate

    from ctbench.safe_yaml import load_config

    return {p.stem: instantiate(load_config(p)) for p in sorted(loss_config_dir().glob("*.yaml"))}


def square(side: int) -> np.ndarray:
    """Truth: a centred ``side`` x ``side`` square in the image."""
    truth = np.zeros((IMAGE_SIDE, IMAGE_SIDE), dtype=np.int64)
    lo = (IMAGE_SIDE - side) // 2
    truth[lo : lo + side, lo : lo + side] = 1
    return truth


def error_orders(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the object's pixels from the boundary inwards (the order false negatives are
    taken) and of the background from the object outwards (false positives); ties in raster order."""
    from scipy import ndimage

    inside = ndimage.distance_transform_edt(truth).ravel()
    outside = ndimage.distance_transform_edt(1 - truth).ravel()
    raster = np.arange(truth.size)
    fg, bg = raster[truth.ravel() == 1], raster[truth.ravel() == 0]
    return fg[np.lexsort((fg, inside[fg]))], bg[np.lexsort((bg, outside[bg]))]


def error_counts(n: int, background: int, fp_share: float) -> list[tuple[int, int]]:
    """Distinct ``(FP, FN)`` along a path: for each target IoU ``t``, ``E = n (1 - t) / ((1 - s) + t s)``
    errors split as ``FP = round(s E)``, ``FN = round((1 - s) E)``; targets needing more false
    positives than the image has background are skipped, and the path ends at its first IoU of 0."""
    out: list[tuple[int, int]] = []
    for t in IOU_TARGETS:
        denominator = (1 - fp_share) + t * fp_share
        if denominator <= 0:
            continue
        errors = n * (1 - t) / denominator
        fp, fn = round(fp_share * errors), min(n, round((1 - fp_share) * errors))
        if fp <= background and (fp, fn) not in out:
            out.append((fp, fn))
        if fn == n:  # IoU 0 reached: the path ends
            break
    return out


def paths() -> Iterator[PredictionPath]:
    for name, side in OBJECTS.items():
        for confidence in CONFIDENCES:
            for share in FP_SHARES:
                for blur in BLUR_SIGMA:
                    for seed in (None, *NOISE_SEEDS):
                        yield PredictionPath(name, side, confidence, share, blur, seed)


def logits_of(pred: np.ndarray, path: PredictionPath, noise: np.ndarray | None) -> np.ndarray:
    """Foreground logit of a hard prediction under the path's confidence, blur and noise."""
    from scipy import ndimage

    c = HARD if path.confidence is None else path.confidence
    prob = np.where(pred == 1, c, 1.0 - c)
    if path.blur:
        prob = ndimage.gaussian_filter(prob, path.blur, mode="nearest")
    logit = np.log(prob) - np.log1p(-prob)
    return logit + noise if noise is not None else logit


def evaluate(path: PredictionPath, losses: dict[str, object]) -> PathValues:
    """Every loss on every prediction of one path."""
    import torch

    truth = square(path.side)
    fn_order, fp_order = error_orders(truth)
    n = int(truth.sum())
    target = torch.from_numpy(truth)[None, None]
    extra = {key: {"weight_map": loss.weight_maps(target)} for key, loss in losses.items()
             if getattr(loss, "uses_weight_map", False)}  # depends on the truth only: computed once
    noise = None
    if path.noise_seed is not None:
        noise = np.random.default_rng(path.noise_seed).normal(0.0, NOISE_SIGMA, truth.shape)
    out = PathValues(path, [], [], [], {key: [] for key in losses})
    for fp, fn in error_counts(n, truth.size - n, path.fp_share):
        pred = truth.ravel().copy()
        pred[fn_order[:fn]] = 0
        pred[fp_order[:fp]] = 1
        fg = torch.from_numpy(logits_of(pred.reshape(truth.shape), path, noise)).float()
        logits = torch.stack([torch.zeros_like(fg), fg])[None]
        with torch.no_grad():
            for key, loss in losses.items():
                out.values[key].append(float(loss(logits, target, **extra.get(key, {}))))
        out.iou.append((n - fn) / (n + fp))
        out.fp.append(fp)
        out.fn.append(fn)
    return out


def is_monotone(iou: list[float], values: list[float]) -> bool:
    """True if the loss never rises as IoU rises: no prediction has a higher loss than any prediction of
    lower IoU (predictions of equal IoU are not compared; ties allowed up to float32 noise)."""
    v = np.asarray(values, dtype=np.float64)
    tolerance = 1e-6 * max(1.0, float(np.abs(v).max()))
    x = np.asarray(iou, dtype=np.float64)
    lowest_so_far = math.inf
    for level in np.unique(x):  # ascending IoU
        group = v[x == level]
        if group.max() > lowest_so_far + tolerance:
            return False
        lowest_so_far = min(lowest_so_far, float(group.min()))
    return True


def _path_columns(p: PredictionPath) -> list[str]:
    return [p.object, str(p.side * p.side), "hard" if p.confidence is None else f"{p.confidence:g}",
            f"{p.fp_share:g}", f"{p.blur:g}", "" if p.noise_seed is None else str(p.noise_seed)]


_PATH_HEADER = ["object", "object_voxels", "confidence", "fp_share", "blur_sigma", "noise_seed"]


def curves_csv(results: list[PathValues]) -> str:
    names = list(results[0].values)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_PATH_HEADER + ["iou", "false_positives", "false_negatives"] + [f"loss_{k}" for k in names])
    for r in results:
        for i, iou in enumerate(r.iou):
            writer.writerow(_path_columns(r.path) + [f"{iou:.6f}", r.fp[i], r.fn[i]]
                            + [f"{r.values[k][i]:.8g}" for k in names])
    return buf.getvalue()


def monotone_csv(results: list[PathValues]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["loss"] + _PATH_HEADER + ["points", "lowest_iou", "monotone", "rise"])
    for key in results[0].values:
        for r in results:
            low = int(np.argmin(r.iou))
            rise = r.values[key][low] - r.values[key][int(np.argmax(r.iou))]
            writer.writerow([key] + _path_columns(r.path) + [len(r.iou), f"{r.iou[low]:.6f}",
                                                              int(is_monotone(r.iou, r.values[key])), f"{rise:.6g}"])
    return buf.getvalue()


def monotone_fractions(results: list[PathValues]) -> dict[str, dict[str, float]]:
    """Per loss, the fraction of monotone paths per object and over all paths (``all``)."""
    out: dict[str, dict[str, float]] = {}
    for key in results[0].values:
        flags: dict[str, list[bool]] = {}
        for r in results:
            if len(r.iou) > 1:
                flag = is_monotone(r.iou, r.values[key])
                flags.setdefault(r.path.object, []).append(flag)
                flags.setdefault("all", []).append(flag)
        out[key] = {name: sum(f) / len(f) for name, f in flags.items()}
    return out


def plot_png(results: list[PathValues]) -> bytes:
    """One panel per loss: median and interquartile band over paths of the loss against IoU, per object."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results[0].values)
    cols = 5
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows), squeeze=False)
    fractions = monotone_fractions(results)
    centres = (IOU_BINS[:-1] + IOU_BINS[1:]) / 2
    colours = dict(zip(OBJECTS, ("tab:blue", "tab:orange", "tab:red", "tab:green"), strict=False))
    for ax, key in zip(axes.ravel(), names, strict=False):
        for obj, colour in colours.items():
            iou = np.concatenate([r.iou for r in results if r.path.object == obj])
            vals = np.concatenate([r.values[key] for r in results if r.path.object == obj])
            which = np.clip(np.digitize(iou, IOU_BINS[1:-1]), 0, len(centres) - 1)
            stats = [np.percentile(vals[which == b], [25, 50, 75]) if np.any(which == b) else [np.nan] * 3
                     for b in range(len(centres))]
            q1, med, q3 = np.asarray(stats).T
            ax.fill_between(centres, q1, q3, color=colour, alpha=0.2, lw=0)
            ax.plot(centres, med, color=colour, lw=1.5,
                    label=f"{obj} ({100 * fractions[key][obj]:.0f} % monotone)")
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("IoU", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)  # below: no curve hidden
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    n_paths = len(results) // len(OBJECTS)
    fig.suptitle(f"Loss against IoU: median and interquartile band over {n_paths} paths per object (confidence, "
                 "false-positive share, blur, logit noise); legend: share of paths on which the loss falls "
                 "monotonically as IoU rises", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def print_table(results: list[PathValues]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Fraction of paths on which each loss falls monotonically as IoU rises")
    table.add_column("loss")
    for col in (*OBJECTS, "all"):
        table.add_column(col, justify="right")
    for key, fractions in monotone_fractions(results).items():
        table.add_row(key, *[f"{fractions[col]:.2f}" for col in (*OBJECTS, "all")])
    Console().print(table)


def run_cli(args: argparse.Namespace) -> int:
    import torch

    out_dir = Path(args.out_dir)
    losses = load_losses()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 100 x 100 images: thread hand-offs cost more than they save on a busy CPU
    try:
        results = [evaluate(path, losses) for path in paths()]
    finally:
        torch.set_num_threads(threads)
    atomic_write_text(out_dir / "loss_curves.csv", curves_csv(results))
    atomic_write_text(out_dir / "loss_monotone.csv", monotone_csv(results))
    png = plot_png(results)
    atomic_write(out_dir / "loss_curves.png", lambda fh: fh.write(png))
    print_table(results)
    print(f"wrote {out_dir / 'loss_curves.png'}, {out_dir / 'loss_curves.csv'} and {out_dir / 'loss_monotone.csv'}")
    return 0
