"""``ctbench list``: the names a config may use, read from the config folders themselves.

The YAML files are the single list of what exists; the first comment line of each file is its
one-line description (paper and novelty), so there is no second, hand-kept registry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctbench.config import CONFIG_DIR, group_choices
from ctbench.errors import CTBenchError

GROUPS = {"models": "model", "losses": "loss", "datasets": "dataset", "optims": "optim",
          "trainers": "trainer", "experiments": "experiment", "studies": "study", "debug": "debug"}


def describe(path: Path) -> str:
    """The first comment line of a config file, without the ``#``."""
    for line in path.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("#").strip()
    return ""


def entries(group: str) -> list[tuple[str, str]]:
    """``(name, description)`` of each config of ``group``; ``claims/c1_fcn_skips`` for one in a subfolder."""
    return [(name, describe(CONFIG_DIR / group / f"{name}.yaml")) for name in group_choices(group)]


def run_cli(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    wanted = list(GROUPS) if args.group is None else [args.group]
    unknown = [g for g in wanted if g not in GROUPS]
    if unknown:
        raise CTBenchError(f"unknown list '{unknown[0]}': choose one of {', '.join(GROUPS)}", exit_code=2)
    console = Console()
    for name in wanted:
        group = GROUPS[name]
        table = Table(title=f"{name} ({group}=NAME)", title_justify="left", show_header=False, box=None)
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("description")
        for stem, text in entries(group):
            table.add_row(stem, escape(text))
        console.print(table)
        console.print()
    return 0
