"""A run records the commit it was trained from and the source files changed since (ctbench.provenance)."""

from __future__ import annotations

import subprocess
from pathlib import Path

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


def test_a_run_resumed_with_other_code_records_each_segment(tmp_path, capsys):
    import json

    import torch

    from ctbench.engine.run import code_segments

    stored = tmp_path / "provenance.json"
    ckpt = tmp_path / "last.ckpt"
    torch.save({"epoch": 5, "global_step": 80}, ckpt)
    assert code_segments(stored, {"git_commit": "b" * 40, "source_changes": []}, ckpt) == {}  # no record yet
    stored.write_text(json.dumps({"git_commit": "a" * 40, "source_changes": []}))
    same = {"git_commit": "a" * 40, "source_changes": []}
    assert code_segments(stored, same, ckpt) == {} and capsys.readouterr().out == ""
    changed = {"git_commit": "a" * 40, "source_changes": ["src/ctbench/x.py"]}
    first = code_segments(stored, changed, ckpt)
    assert first == {"code_segments": [{"git_commit": "a" * 40, "source_changes": [], "cpu": None, "from_epoch": 0},
                                       {**changed, "cpu": None, "from_epoch": 5}]}
    assert "goes on at aaaaaaaaaa with uncommitted changes from epoch 5" in capsys.readouterr().out
    stored.write_text(json.dumps({**changed, **first}))
    torch.save({"epoch": 9, "global_step": 144}, ckpt)
    assert code_segments(stored, changed, ckpt) == first  # the same code again: the record is kept
    later = code_segments(stored, {"git_commit": "c" * 40, "source_changes": []}, ckpt)["code_segments"]
    assert [s["from_epoch"] for s in later] == [0, 5, 9] and later[-1]["git_commit"] == "c" * 40


def test_a_run_resumed_on_another_kind_of_cpu_records_a_segment(tmp_path, capsys):
    """Float kernels differ between CPUs (the study's Intel-made runs do not replay on an AMD machine), so a run
    resumed on another kind of CPU is a mixed run too; a record made before CPUs were recorded is not compared."""
    import json

    import torch

    from ctbench.engine.run import code_segments

    stored, ckpt = tmp_path / "provenance.json", tmp_path / "last.ckpt"
    torch.save({"epoch": 7, "global_step": 112}, ckpt)
    code = {"git_commit": "a" * 40, "source_changes": []}
    stored.write_text(json.dumps({**code, "machine": {"cpu": "Intel(R) Xeon(R) Processor", "torch_threads": 1}}))
    amd = {**code, "machine": {"cpu": "AMD EPYC", "torch_threads": 1}}
    record = code_segments(stored, amd, ckpt)["code_segments"]
    assert [(s["cpu"], s["from_epoch"]) for s in record] == [("Intel(R) Xeon(R) Processor", 0), ("AMD EPYC", 7)]
    assert "(CPU Intel(R) Xeon(R) Processor, now AMD EPYC)" in capsys.readouterr().out
    stored.write_text(json.dumps({**code, "machine": {"cpu": "AMD EPYC", "torch_threads": 1}}))
    assert code_segments(stored, amd, ckpt) == {}  # the same CPU and code
    stored.write_text(json.dumps(code))  # written before CPUs were recorded
    assert code_segments(stored, amd, ckpt) == {} and capsys.readouterr().out == ""


def test_the_report_line_names_the_code_segments():
    from ctbench.reports.run_report import _segments

    assert _segments(None) == "" and _segments([{"from_epoch": 0}]) == ""
    assert _segments([{"from_epoch": 0}, {"from_epoch": 40}]).startswith("; resumed with other code or on another "
                                                                         "CPU: 2 versions from epochs 0, 40")


def test_a_run_records_its_cpu_model_and_threads_and_scipy():
    """A run replays bit for bit only on the same kind of CPU (the study's Intel-made runs do not replay on an
    AMD machine), and scipy draws the phantom and the surface distances: both are recorded."""
    import torch

    from ctbench.provenance import run_provenance

    record = run_provenance(3, 1)
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), None) if Path("/proc/cpuinfo").is_file() else None
    if model is not None:
        assert record["machine"]["cpu"] == model
    assert record["machine"]["torch_threads"] == torch.get_num_threads()
    assert record["versions"]["scipy"] and (record["seed"], record["fold"]) == (3, 1)
