"""``report/progress.png``: training loss, validation Dice per class and learning rate per epoch, read from
the run's logged metrics (nnU-Net's ``progress.png``, Isensee et al. 2021, made from Lightning's logs).

Sources, in order: a Lightning ``metrics.csv`` (``logger=csv``) anywhere in the run folder, else the
TensorBoard event files (``logger=tensorboard``, the default). Tags: ``train/loss_epoch``,
``val/dice_<class>``, ``val/mean_dice`` and ``lr-<optimizer>`` (Lightning's ``LearningRateMonitor``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

#: epoch -> value of one logged metric
Series = dict[int, float]


def _from_csv(path: Path) -> dict[str, Series]:
    """Every metric column of a Lightning ``metrics.csv`` by epoch (the last value logged in each epoch)."""
    series: dict[str, Series] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    series.setdefault(key, {})[epoch] = float(value)
    return series


def _from_tensorboard(folder: Path) -> dict[str, Series]:
    """Every scalar of the event files in ``folder`` by epoch; a step's epoch is that of Lightning's ``epoch``
    scalar at the same or the latest earlier step."""
    import bisect

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    if "epoch" not in tags:
        return {}
    marks = sorted((e.step, int(e.value)) for e in events.Scalars("epoch"))
    steps = [s for s, _ in marks]

    def epoch_of(step: int) -> int:
        index = bisect.bisect_right(steps, step) - 1
        return marks[max(index, 0)][1]

    return {tag: {epoch_of(e.step): float(e.value) for e in events.Scalars(tag)} for tag in tags if tag != "epoch"}


def read_metrics(run_dir: Path) -> dict[str, Series]:
    """The run's logged metrics by epoch: ``metrics.csv`` if the run has one, else its TensorBoard events."""
    tables = sorted(run_dir.rglob("metrics.csv"))
    if tables:
        return _from_csv(tables[-1])
    folders = sorted({p.parent for p in run_dir.rglob("events.out.tfevents.*")})
    return _from_tensorboard(folders[0]) if folders else {}


def run_title(run_dir: Path) -> str:
    """``MODEL x LOSS (ND)`` from the run's ``resolved_config.yaml`` (``names``, ``dims``), else the folder name."""
    from ctbench.errors import CTBenchError
    from ctbench.safe_yaml import load_yaml

    try:
        cfg = load_yaml(run_dir / "resolved_config.yaml")
        names = cfg["names"]
        return f"{names['model']} x {names['loss']}" + (f" ({cfg['dims']}D)" if cfg.get("dims") else "")
    except (CTBenchError, KeyError, TypeError):
        return run_dir.name


def write_progress_png(run_dir: str | Path) -> Path | None:
    """Plot ``run_dir``'s training loss, validation Dice per class (and their mean) and learning rate per
    epoch into ``run_dir/report/progress.png``; None (nothing written) when the run logged no metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ctbench.atomic import atomic_write

    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    loss = metrics.get("train/loss_epoch", {})
    dice = {k.removeprefix("val/dice_"): v for k, v in metrics.items() if k.startswith("val/dice_")}
    rates = {k.removeprefix("lr-"): v for k, v in sorted(metrics.items()) if k.startswith("lr-")}
    if not (loss or dice or rates):
        return None
    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    panels = ((axes[0], {"training loss": loss}, "loss"),
              (axes[1], {**dice, **({"mean": metrics["val/mean_dice"]} if "val/mean_dice" in metrics else {})},
               "validation Dice"),
              (axes[2], rates, "learning rate"))
    for ax, lines, ylabel in panels:
        for name, series in lines.items():
            epochs = sorted(e for e, v in series.items() if math.isfinite(v))
            style = {"color": "black", "linestyle": "--"} if name == "mean" else {}
            ax.plot(epochs, [series[e] for e in epochs], marker="o", markersize=3, label=name, **style)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not lines:  # e.g. no validation yet (check_val_every_n_epoch beyond the epochs trained)
            ax.text(0.5, 0.5, f"no {ylabel} recorded", ha="center", va="center", transform=ax.transAxes)
        elif len(lines) > 1 or ylabel == "validation Dice":
            ax.legend(fontsize=8, loc="best")
    axes[1].set_ylim(0, 1)
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set_xlabel("epoch")
    fig.suptitle(f"{run_title(run_dir)}: training progress")
    fig.tight_layout()
    target = run_dir / "report" / "progress.png"
    atomic_write(target, lambda fh: fig.savefig(fh, format="png", dpi=100))
    plt.close(fig)
    return target
