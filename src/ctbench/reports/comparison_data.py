"""What one ``ctbench report`` compares: the model x loss cells, the failed runs and the paired tests
against the baseline. :mod:`~ctbench.reports.comparison` builds it, :mod:`~ctbench.reports.render` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctbench.reports.collect import Cell, FailedRun
from ctbench.reports.statistics import PairedResult

#: Metrics always written to comparison.csv.
CSV_METRICS: tuple[str, ...] = ("dice", "iou", "hd95", "hd95_nan_dropped")


@dataclass
class Comparison:
    """Everything the renderers need."""

    cells: dict[tuple[str, str], Cell]
    failed: list[FailedRun]
    metric: str
    baseline: tuple[str, str] | None
    tests: dict[tuple[str, str], PairedResult]
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
