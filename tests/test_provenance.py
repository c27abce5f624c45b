"""A run records the commit it was trained from and the source files changed since (ctbench.provenance)."""

from __future__ import annotations

import subprocess

from ctbench.provenance import uncommitted_source
from ctbench.reports.run_report import _changes


def _git(*args: str, cwd) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_the_changed_source_files_are_listed_and_nothing_else(tmp_path):
    _git("init", "-q", cwd=tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "src" / "model.py").write_text("a = 1\n")
    (tmp_path / "notes.txt").write_text("x\n")
    _git("add", ".", cwd=tmp_path)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first", cwd=tmp_path)
    assert uncommitted_source(tmp_path) == []
    (tmp_path / "src" / "model.py").write_text("a = 2\n")
    (tmp_path / "configs" / "new.yaml").write_text("b: 1\n")
    (tmp_path / "notes.txt").write_text("y\n")  # outside src/ and configs/: results, notes
    assert uncommitted_source(tmp_path) == ["configs/new.yaml", "src/model.py"]
    assert uncommitted_source(tmp_path / "not_a_checkout_child") == []


def test_the_report_line_names_them():
    assert _changes([]) == ""
    assert _changes(["src/a.py"]) == " with uncommitted changes to 1 source file (`src/a.py`)"
    assert _changes([f"src/{i}.py" for i in range(6)]).endswith("`src/3.py` and 2 more)")
