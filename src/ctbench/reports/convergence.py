"""The ``convergence`` block of a training run's ``summary.json``: did the run reach a plateau?

A run is **converged** when its learning-rate schedule completed and the best validation value in the
last 20 % of its epochs exceeds the best before them by at most ``plateau`` (``study.plateau``, default
0.005 Dice); **still improving** when it exceeds it by more (or when the validations do not show a
plateau: none before or none in the last 20 %); **schedule not completed** when training stopped before
the schedule's end (early stopping, a kill, a budget cut), whatever the curve. A converged run whose last
20 % stays ``FALL`` or more below its best before says so in its note: its curve fell after its best (the
checkpoint selected on validation, from before the fall, is the one tested), not a plateau at the best. The protocol follows the
"train to convergence" requirement of Isensee et al. 2024 (nnU-Net Revisited) and the reporting advice of
Bouthillier et al. 2021 (variance in ML benchmarks): a comparison of unconverged runs compares budgets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: Default smallest gain of the validation metric over the last 20 % of epochs that counts as improving.
DEFAULT_PLATEAU = 0.005
#: Share of the epochs, at the end, whose best validation value is compared with the best before.
LAST_SHARE = 0.2
#: The validation metric the history holds (the checkpoint-selection metric).
METRIC = "val/mean_dice"
VERDICTS = ("converged", "still improving", "schedule not completed")
#: A converged run whose best of the last 20 % is this far (or more) below its best before has fallen, not
#: levelled off: the note says so (10x the default plateau; the verdict is unchanged).
FALL = 0.05


def convergence(history: Sequence[Sequence[float]], epochs: int, schedule_completed: bool,
                plateau: float = DEFAULT_PLATEAU, metric: str = METRIC) -> dict[str, Any]:
    """The convergence block from a run's validation history.

    Args:
        history: ``[epoch, value]`` of each validation (epochs counted from 0); non-finite values are ignored.
        epochs: epochs trained; the last ``ceil(0.2 * epochs)`` of them are the "last 20 %".
        schedule_completed: whether the learning-rate schedule ran to its end.
        plateau: the largest gain of ``best_last`` over ``best_before`` that still counts as a plateau.
        metric: name of the validation metric, written into the block.

    Returns:
        ``{"verdict", "schedule_completed", "metric", "best_last", "best_before", "plateau",
        "last_from_epoch", "epochs", "validations", "note", "history"}``; ``best_*`` are null when no
        validation falls in that part; ``history`` is the finite ``[epoch, value]`` points (the learning curve).
    """
    plateau = float(plateau)
    if not (plateau >= 0 and math.isfinite(plateau)):
        raise ValueError(f"study.plateau={plateau} must be a finite gain >= 0 of the validation metric")
    points = [(int(e), float(v)) for e, v in history if math.isfinite(float(v))]
    epochs = max([int(epochs), *(e + 1 for e, _ in points)])
    last_from = epochs - math.ceil(LAST_SHARE * epochs)
    last = [v for e, v in points if e >= last_from]
    before = [v for e, v in points if e < last_from]
    best_last, best_before = (max(last) if last else None), (max(before) if before else None)
    note = ""
    if not schedule_completed:
        verdict = "schedule not completed"
        note = "training stopped before the end of its learning-rate schedule"
    elif best_last is None or best_before is None:
        verdict = "still improving"
        note = (f"no validation {'in the last 20 % of epochs' if best_last is None else 'before the last 20 %'}"
                ": a plateau is not shown (validate more often: trainer.check_val_every_n_epoch)")
    else:
        verdict = "still improving" if best_last - best_before > plateau else "converged"
        if best_before - best_last >= FALL:
            note = (f"fell after its best ({best_before:.3f} before the last 20 % of epochs, at most {best_last:.3f} "
                    "in them): the checkpoint selected on validation, from before the fall, is the one tested")
    return {"verdict": verdict, "schedule_completed": bool(schedule_completed), "metric": metric,
            "best_last": best_last, "best_before": best_before, "plateau": plateau, "last_from_epoch": last_from,
            "epochs": epochs, "validations": len(points), "note": note,
            "history": [[e, round(v, 5)] for e, v in points]}
