"""The job time a study has spent, every attempt counted, from its log (``STUDY_DIR/study_run.log``).

    .venv/bin/python scripts/study_time_spent.py multirun/claims/study_run.log [more logs]

``study_jobs.json`` keeps one record per run folder: the time of the run that stands. A run retrained after its
network or loss arm moved up an epoch tier replaced the record of the run it retired, so that file's total is the
cost of the runs the verdicts use, not of the study. ``ctbench study run`` prints a line when a job segment ends
(``NAME: done in M min (C min CPU)``, or ``failed``); their sum is the job time every finished segment took,
retired and failed runs included. A segment cut by a killed study printed no line, so the sum is a lower bound.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

SEGMENT = re.compile(r"^\[study\] (?P<name>\S+): (?P<status>done|failed) in (?P<wall>[\d.]+) min "
                     r"\((?P<cpu>[\d.]+) min CPU\)", re.MULTILINE)
STARTED = re.compile(r"^\[study\] \d+ jobs for ", re.MULTILINE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args()
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
