#!/usr/bin/env python
"""Where `ctbench study report` spends its time: the plan (Hydra composes every job's config), the check that no
complete run folder holds another config, and the report itself (verdicts, figures, the doc section).

    PYTHONPATH=src .venv/bin/python scripts/study_report_time.py /tmp/survey-reproduction.md

Run from the repository root; it writes what `ctbench study report --doc DOC` writes (DOC, and
multirun/claims/report/). To compare two versions of the code, check the other one out
(`git worktree add /tmp/base COMMIT`) and run this script with `PYTHONPATH=/tmp/base/src`, interleaved with the
current one, on an idle machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ctbench import study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("doc", type=Path, help="markdown file the study section is written to (not the committed doc)")
    doc = parser.parse_args().doc
    start = time.perf_counter()
    whole = study.plan(list(study.CLAIMS), "cpu")
    planned = time.perf_counter()
    stale = study.finished_with_another_config(whole)
    checked = time.perf_counter()
    args = argparse.Namespace(study_dir=Path("multirun/claims"), doc=str(doc), study="cpu", srun=False, jobs=2,
                              action="report", only=None)
    study.report(args, list(study.CLAIMS), whole)
    done = time.perf_counter()
    print(f"plan {planned - start:.1f} s ({len(whole)} jobs); stale-folder check {checked - planned:.1f} s "
          f"({len(stale)} found); report {done - checked:.1f} s; all {done - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
