#!/usr/bin/env python
"""README's survey-claims table, generated from the study's ``claims.csv`` (``ctbench study report`` writes it).

    .venv/bin/ctbench study report --doc docs/survey-reproduction.md
    .venv/bin/python scripts/readme_study_table.py [multirun/claims/report/claims.csv] [README.md] [--check]

Replaces the lines between ``<!-- study-table:begin -->`` and ``<!-- study-table:end -->`` in the README with
a count of verdicts and one row per claim file: what it states, its cases x runs, the candidate's and the
baseline's means (the level the difference starts from: two lesion Dice means near 0 are a floor, not an
equivalence), the difference with its simultaneous interval, and the verdict (with the reason where a claim is
not evaluable, and *(at the floor)* where a no practical difference is one). ``--check`` writes nothing and exits
1 when the README's table is not the one ``claims.csv`` gives (the slow tier runs it after a fresh report).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from pathlib import Path

from ctbench.reports.claims import FLOOR_NOTE

BEGIN, END = "<!-- study-table:begin -->", "<!-- study-table:end -->"


def claim_order(claim_id: str) -> tuple[int, str]:
    """C2b before C10a: the claim number, then its letter; an id of another form last."""
    match = re.match(r"C(\d+)([a-z]?)", claim_id)
    return (int(match.group(1)), match.group(2)) if match else (999, claim_id)


def cell(text: str) -> str:
    """``text`` as one Markdown table cell: no column separator, no line break."""
    return text.replace("|", "/").replace("\n", " ")


def short(note: str, limit: int = 110) -> str:
    note = cell(note)
    return note if len(note) <= limit else note[: limit - 3].rstrip() + "..."


def table(rows: list[dict[str, str]]) -> list[str]:
    counts = Counter(r["verdict"] for r in rows)
    order = ("reproduced", "contradicted", "no practical difference", "inconclusive", "not evaluable")
    lines = [f"{len(rows)} claim files, one family; verdicts: "
             + ", ".join(f"{counts.get(v, 0)} {v}" for v in order) + ".", "",
             "| claim | statement | cases x runs | candidate / baseline | difference [simultaneous CI] | verdict |",
             "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: claim_order(r["id"])):
        diff = ""
        if r["mean_diff"]:
            diff = f"{float(r['mean_diff']):+.3g} [{float(r['ci_low']):+.3g}, {float(r['ci_high']):+.3g}]"
        levels = ""
        if r.get("candidate_mean") and r.get("baseline_mean"):
            levels = f"{float(r['candidate_mean']):.3g} / {float(r['baseline_mean']):.3g}"
        verdict = r["verdict"] + (f": {short(r['note'])}" if r["verdict"] == "not evaluable" and r["note"] else "") \
            + (" (at the floor)" if r["note"].startswith(FLOOR_NOTE) else "")
        lines.append(f"| {r['id']} | {cell(r['claim'])} | {r['n_cases'] or 0} x {r['candidate_runs'] or 0}/"
                     f"{r['baseline_runs'] or 0} | {levels} | {diff} | {verdict} |")
    return lines


def split_block(path: Path, begin: str, end: str) -> tuple[str, str, str]:
    """``path``'s text before ``begin``, between the markers, and after ``end``; refused with one line when the
    file has no such block."""
    text = path.read_text()
    if begin not in text or end not in text:
        sys.exit(f"{path}: no {begin} ... {end} block; add one where the table goes")
    head, rest = text.split(begin, 1)
    inside, tail = rest.split(end, 1)
    return head, inside, tail


def fill_block(path: Path, begin: str, end: str, lines: list[str]) -> None:
    """Replace the lines between the markers ``begin`` and ``end`` of ``path`` with ``lines``."""
    head, _, tail = split_block(path, begin, end)
    path.write_text("\n".join([f"{head}{begin}", *lines, f"{end}{tail}"]))


def block_is_current(path: Path, begin: str, end: str, lines: list[str]) -> bool:
    """Whether the block between ``begin`` and ``end`` of ``path`` holds exactly ``lines`` (what :func:`fill_block`
    would write)."""
    return split_block(path, begin, end)[1] == "\n".join(["", *lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("claims_csv", nargs="?", type=Path, default=Path("multirun/claims/report/claims.csv"))
    parser.add_argument("readme", nargs="?", type=Path, default=Path("README.md"))
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the README's table is not the one CLAIMS_CSV gives")
    args = parser.parse_args()
    source, readme = args.claims_csv, args.readme
    if not source.is_file():
        sys.exit(f"{source}: no such file: run `.venv/bin/ctbench study report --doc docs/survey-reproduction.md` first")
    with source.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    lines = [f"<!-- generated by scripts/readme_study_table.py from {source} -->", *table(rows)]
    if args.check:
        if not block_is_current(readme, BEGIN, END, lines):
            sys.exit(f"{readme}: its study table is not the one {source} gives; rewrite it with "
                     f"`.venv/bin/python scripts/readme_study_table.py {source} {readme}`")
        print(f"{readme}: its study table is current ({len(rows)} claims from {source})")
        return
    fill_block(readme, BEGIN, END, lines)
    print(f"{readme}: {len(rows)} claims from {source}")


if __name__ == "__main__":
    main()
