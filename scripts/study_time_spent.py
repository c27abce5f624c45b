"""The job time a study has spent, every attempt counted, from its log (``STUDY_DIR/study_run.log``).

    .venv/bin/python scripts/study_time_spent.py multirun/claims/study_run.log [more logs]

``study_jobs.json`` keeps one record per run folder: the time of the run that stands. A run retrained after its
network or loss arm moved up an epoch tier replaced the record of the run it retired, so that file's total is the
cost of the runs the verdicts use, not of the study. ``ctbench study run`` prints a line when a job segment ends
(``NAME: done in M min (C min CPU)``, or ``failed``); their sum is the job time every finished segment took,
retired and failed runs included. A segment cut by a killed study printed no line, so the sum is a lower bound.

``--by-cpu DIR...`` prints instead the median training seconds per epoch of each network, per kind of CPU the
runs were made on (``train_seconds / epochs`` and ``predict_hardware`` of each ``report/summary.json`` below DIR;
the study's runs were made on two), the figures the study's time estimates are calibrated on. A run resumed from
``last.ckpt`` (its ``train.log`` says so) whose summary was written before 63b4823 counted only its last process's
training time (``docs/report-format.md``), so it is left out, and the count of such runs is printed:

    .venv/bin/python scripts/study_time_spent.py --by-cpu multirun/claims multirun/claims_tuning
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

SEGMENT = re.compile(r"^\[study\] (?P<name>\S+): (?P<status>done|failed) in (?P<wall>[\d.]+) min "
                     r"\((?P<cpu>[\d.]+) min CPU\)", re.MULTILINE)
STARTED = re.compile(r"^\[study\] \d+ jobs for ", re.MULTILINE)
RESUMED = re.compile(r"Restoring states from the checkpoint path at \S*last\.ckpt")
#: the commit from which a resumed run's ``train_seconds`` sums every process of the run
TRAIN_SECONDS_SUMMED = "63b4823"


def counts_every_process(run: Path, commit: str | None) -> bool:
    """Whether a run's ``train_seconds`` is its whole training time: it never resumed from ``last.ckpt``, or its
    summary was written at a commit that has :data:`TRAIN_SECONDS_SUMMED` (an unknown commit counts as before). A
    run begun before that commit and resumed after it would pass with its earlier processes uncounted; no run of
    the study's folders is one (6 Dec 20:15)."""
    log = run / "train.log"
    if not log.is_file() or not RESUMED.search(log.read_text(errors="replace")):
        return True
    if not commit:
        return False
    return subprocess.run(["git", "merge-base", "--is-ancestor", TRAIN_SECONDS_SUMMED, commit],
                          capture_output=True, cwd=Path(__file__).resolve().parent).returncode == 0


def seconds_per_epoch_by_cpu(folders: list[Path]) -> None:
    """Median training seconds per epoch per network (MODEL-DIMSd) and CPU, from the runs' summaries."""
    times: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    partial = []
    for summary in sorted(p for folder in folders for p in folder.glob("*/report/summary.json")):
        data = json.loads(summary.read_text())
        name = summary.parent.parent.name
        if "-eval-" in name or not data.get("epochs") or not data.get("train_seconds"):
            continue  # an evaluation of another run's weights trains nothing
        if not counts_every_process(summary.parent.parent, data.get("git_commit")):
            partial.append(name)
            continue
        model, _, dims = name.split("-")[:3]
        cpu = str(data.get("predict_hardware", "unknown")).split(",")[0].removeprefix("CPU ")
        times[(f"{model}-{dims}", cpu)].append(data["train_seconds"] / data["epochs"])
    print("| network | CPU | runs | median train s/epoch |\n|---|---|---:|---:|")
    for (network, cpu), values in sorted(times.items()):
        print(f"| {network} | {cpu} | {len(values)} | {statistics.median(values):.2f} |")
    if partial:
        print(f"\nLeft out: {len(partial)} runs resumed before {TRAIN_SECONDS_SUMMED}, whose train_seconds is their last "
              f"process's only: {', '.join(partial)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path, help="study logs, or run folders with --by-cpu")
    parser.add_argument("--by-cpu", action="store_true", help="median train seconds per epoch per network and CPU")
    args = parser.parse_args()
    if args.by_cpu:
        seconds_per_epoch_by_cpu(args.logs)
        return
    for log in args.logs:
        text = log.read_text(errors="replace")
        segments = list(SEGMENT.finditer(text))
        wall = Counter()
        cpu = Counter()
        for s in segments:
            wall[s["status"]] += float(s["wall"])
            cpu[s["status"]] += float(s["cpu"])
        finished = Counter(s["name"] for s in segments if s["status"] == "done")
        again = sorted(n for n, k in finished.items() if k > 1)
        total = sum(wall.values())
        print(f"{log}: {len(STARTED.findall(text))} study runs; {len(segments)} finished job segments, "
              f"{total:.0f} min of job wall time ({total / 60:.1f} h; {sum(cpu.values()):.0f} min CPU): "
              f"done {wall['done']:.0f} min, failed {wall['failed']:.0f} min; "
              f"{len(again)} run folders finished more than once (retrained at another tier or re-reported)")


if __name__ == "__main__":
    main()
