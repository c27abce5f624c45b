"""End-of-sweep status of ``ctbench train -m``: which jobs finished, which failed and why.

A job's error is caught inside the job (the sweep goes on with its other jobs), and a SLURM job runs
on another node, so the launching process cannot see failures from the jobs' return values. This Hydra
callback runs in the launching process when the sweep ends, reads every job folder of the sweep
(``report/summary.json`` with ``"status": "complete"``, else the reason from the job's log, exactly as
``ctbench report`` reads them), prints a one-line status per failed job, and marks the sweep failed so
that ``ctbench`` exits 1 (a scheduler or CI then sees it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

#: set by :class:`SweepStatus` in the launching process; ``run_hydra_command`` turns it into the exit code
failed_jobs: list[str] = []


class SweepStatus(Callback):
    """Hydra callback (``hydra.callbacks.sweep_status``): after a ``train`` multirun, report failed jobs."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("task_name") != "train":
            return
        from ctbench.errors import CTBenchError
        from ctbench.reports.collect import collect

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            runs, failed = collect([sweep_dir])
        except CTBenchError as err:  # no job folder at all: every job failed before writing anything
            failed_jobs.append(str(err))
            print(f"ctbench: sweep failed: {err}", file=sys.stderr)
            return
        total = len(runs) + len(failed)
        for job in failed:
            failed_jobs.append(job.name)
            print(f"ctbench: sweep job {job.name} failed: {job.reason}", file=sys.stderr)
        if failed:
            print(f"ctbench: sweep finished with {len(failed)} of {total} job(s) failed ({sweep_dir}); "
                  "fix the cause and rerun the same command: complete jobs are skipped", file=sys.stderr)
        else:
            print(f"ctbench: sweep finished: all {total} job(s) complete in {sweep_dir}; "
                  f"compare them with `ctbench report {sweep_dir}`")
