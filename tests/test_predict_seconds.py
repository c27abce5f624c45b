"""``predict_seconds`` (per_case.csv) and ``predict_seconds_mean`` (summary.json): the wall time of each test
case's prediction, which the cascade's "time per volume" claim (C4c) reads."""

from __future__ import annotations

import csv
import math
import time

import pytest

from cli_helpers import ctbench, read_summary

METRICS_SLEEP = 6.0  # far above the warmest debug case's prediction + 0.3 s (0.48 s beside two training jobs, 5 Dec)


def _per_case_seconds(run) -> dict[str, set[float]]:
    seconds: dict[str, set[float]] = {}
    for row in csv.DictReader((run / "report" / "per_case.csv").open()):
        seconds.setdefault(row["case"], set()).add(float(row["predict_seconds"]))
    return seconds


def test_train_records_each_cases_predict_seconds_and_their_mean(trained_run):
    seconds = _per_case_seconds(trained_run)
    assert len(seconds) == 2 and all(len(values) == 1 for values in seconds.values())  # one time per case
    per_case = [next(iter(values)) for values in seconds.values()]
    assert all(0 < s < 60 for s in per_case)
    summary = read_summary(trained_run)
    assert summary["predict_seconds_mean"] == pytest.approx(math.fsum(per_case) / 2, abs=1e-4)
    assert summary["predict_hardware"].startswith("CPU ") and "torch thread(s)" in summary["predict_hardware"]


@pytest.mark.slow
def test_predict_seconds_covers_the_prediction_and_not_the_metrics(trained_run, workdir, monkeypatch):
    """Back to the file's grid + post-processing made 0.3 s slower and the metrics 6 s slower: each case's
    time includes the first, and no case's the second (its time stays under 6 s, which a timed metric alone
    would exceed; not compared with the trained run's times, which another load measured)."""
    from ctbench import metrics
    from ctbench.engine.segmenter import Segmenter

    labels, case_metrics = Segmenter.labels, metrics.case_metrics

    def slow_labels(self, *args, **kwargs):
        time.sleep(0.3)
        return labels(self, *args, **kwargs)

    def slow_metrics(*args, **kwargs):
        time.sleep(METRICS_SLEEP)
        return case_metrics(*args, **kwargs)

    monkeypatch.setattr(Segmenter, "labels", slow_labels)
    monkeypatch.setattr("ctbench.metrics.case_metrics", slow_metrics)
    out = workdir / "outputs" / "eval_timed"
    ctbench("eval", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", "debug=fast", "progress_bar=false",
            f"hydra.run.dir={out}", cwd=workdir)
    after = {case: next(iter(v)) for case, v in _per_case_seconds(out).items()}
    assert after.keys() == _per_case_seconds(trained_run).keys()
    assert all(seconds >= 0.3 for seconds in after.values()), after
    # timed metrics would put every case above METRICS_SLEEP; the eval's first case may also carry the process's
    # cold start (first forward pass, lazy imports: 5.6 s once on a loaded CI-like machine), so the warmest decides
    assert min(after.values()) < METRICS_SLEEP, after
