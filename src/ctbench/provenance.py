"""Where a result came from: git commit, package versions, machine and process memory.

One list of packages and one ``/proc`` reader for the run folder's ``provenance.json``, the benchmark's
``benchmark.json`` and the scripts, so every file states the same facts the same way.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from pathlib import Path
from typing import Any

#: the packages whose versions a result depends on
PACKAGES = ("ctbench", "torch", "lightning", "monai", "hydra-core", "omegaconf", "numpy", "scipy", "nibabel",
            "SimpleITK")


def git_commit() -> str:
    """The commit of the ctbench source tree, or ``unknown`` outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def uncommitted_source(root: Path | None = None) -> list[str]:
    """The files of the source tree (``src/``, ``configs/`` of the checkout at ``root``, default ctbench's
    own) that differ from its commit: a run trained with them is not the commit's run. Empty when clean
    or outside a git checkout."""
    root = Path(__file__).resolve().parents[2] if root is None else root
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "src", "configs"],
                             capture_output=True, text=True, timeout=5, cwd=root).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(line[3:].strip() for line in out.splitlines() if len(line) > 3)


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Installed versions of :data:`PACKAGES` (+ ``extra``) and Python's."""
    import importlib.metadata as md

    out: dict[str, str | None] = {}
    for pkg in (*PACKAGES, *extra):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    out["python"] = platform.python_version()
    return out


def proc_kb(path: str | Path, field: str) -> float | None:
    """``field`` (``VmRSS``, ``Pss``, ``MemTotal``, ...) of a ``/proc`` file in kB, or ``None`` off Linux."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_tree(pid: int | None = None) -> list[int]:
    """``pid`` (default: this process) and all its descendants (loader workers), Linux only."""
    pid = os.getpid() if pid is None else pid
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except (OSError, ValueError):
                pass
    return found


def memory_now(pid: int | None = None) -> dict[str, float | None]:
    """RSS of ``pid`` and of its process tree, and the tree's PSS (shared pages counted once), in MB."""
    pid = os.getpid() if pid is None else pid
    tree = process_tree(pid)
    rss = [proc_kb(f"/proc/{p}/status", "VmRSS") for p in tree]
    pss = [proc_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in tree]

    def mb(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return round(sum(known) / 1024, 1) if known else None

    return {"rss_mb": mb(rss[:1]), "tree_rss_mb": mb(rss), "tree_pss_mb": mb(pss), "processes": len(tree)}


def peak_rss_mb() -> dict[str, float]:
    """Peak RSS of this process (``VmHWM``, else ``getrusage``) and of its finished children, in MB."""
    scale = 1024 * 1024 if platform.system() == "Darwin" else 1024  # bytes on macOS, kB on Linux
    own = proc_kb(f"/proc/{os.getpid()}/status", "VmHWM")
    own_mb = own / 1024 if own is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    return {"self_mb": round(own_mb, 1),
            "children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / scale, 1)}


def machine_info() -> dict[str, Any]:
    """CPU, memory, load, threads and accelerator of this machine (what the figures depend on)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = proc_kb("/proc/meminfo", "MemTotal")
    info: dict[str, Any] = {
        "hostname": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
        "cpu": cpu, "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(mem / 2**20, 1) if mem else None,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def run_provenance(seed: int, fold: int) -> dict[str, Any]:
    """Seed, fold, git commit (and the source files changed since it), package versions and the CPU model and
    torch threads of a run (``provenance.json`` and the report): a run replays bit for bit only on the same
    kind of CPU, since float kernels differ between CPUs (the study's runs made on an Intel Xeon do not replay
    on an AMD EPYC, ``scripts/first_validation_replay.py``)."""
    machine = machine_info()
    return {"seed": int(seed), "fold": int(fold), "git_commit": git_commit(), "source_changes": uncommitted_source(),
            "versions": package_versions(),
            "machine": {"cpu": machine["cpu"], "torch_threads": machine["torch_threads"]}}
