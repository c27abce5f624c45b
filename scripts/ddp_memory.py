#!/usr/bin/env python
"""Peak memory per process of ``ctbench train`` with one process and with two DDP processes (issue 6).

Runs the same training twice, ``trainer=cpu`` and ``trainer=ddp_cpu`` (2 gloo processes), and samples
the resident set (``VmRSS``) and proportional set (``Pss``, shared pages split between the processes
that map them) of every process of the run every 0.2 s from ``/proc``. Under DDP each rank caches only
its shard of the training cases (``CTDataModule.train_dataloader``), so a rank's peak should sit
below the single process's, not above it.

    .venv/bin/python scripts/ddp_memory.py                       # default phantom, 2 epochs
    .venv/bin/python scripts/ddp_memory.py -o debug=fast --epochs 1 --out /tmp/ddp_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _kb(path: Path, field: str) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(field + ":"))


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Lightning starts rank 1 as a child of rank 0)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def measure(command: list[str], cwd: Path) -> dict[str, Any]:
    """Run ``command``; peak RSS and PSS (MB) of each process of its tree, keyed by start order."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    peaks: dict[int, dict[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in _tree(proc.pid):
                rss = _kb(Path(f"/proc/{pid}/status"), "VmRSS") / 1024
                pss = _kb(Path(f"/proc/{pid}/smaps_rollup"), "Pss") / 1024
                peak = peaks.setdefault(pid, {"rss_mb": 0.0, "pss_mb": 0.0})
                peak["rss_mb"], peak["pss_mb"] = max(peak["rss_mb"], rss), max(peak["pss_mb"], pss)
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"ctbench exited {proc.returncode}:\n{err[-3000:]}")
    # processes that ran a rank are the big ones; helper processes (e.g. a compile worker) stay small
    ranks = [{"pid": pid, **{k: round(v, 1) for k, v in p.items()}} for pid, p in peaks.items() if p["rss_mb"] > 200]
    return {"wall_s": round(time.perf_counter() - start, 1), "processes": ranks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--workdir", type=Path, default=Path("outputs/ddp_memory"))
    parser.add_argument("--out", type=Path, default=None, help="JSON (default WORKDIR/ddp_memory.json)")
    args = parser.parse_args(argv)
    ctbench = [str(Path(sys.executable).parent / "ctbench")]
    result: dict[str, Any] = {"overrides": args.override, "epochs": args.epochs}
    for name, trainer in (("single", "trainer=cpu"), ("ddp_2_processes", "trainer=ddp_cpu")):
        run = (args.workdir / name).resolve()
        command = [*ctbench, "train", trainer, *args.override, f"trainer.max_epochs={args.epochs}",
                   "trainer.check_val_every_n_epoch=1", "progress_bar=false", f"hydra.run.dir={run}", "overwrite=true"]
        print(f"[ddp-memory] {' '.join(command[1:])}", flush=True)
        result[name] = measure(command, Path.cwd())
        for p in result[name]["processes"]:
            print(f"[ddp-memory]   pid {p['pid']}: peak RSS {p['rss_mb']:.0f} MB, peak PSS {p['pss_mb']:.0f} MB",
                  flush=True)
    out = args.out or args.workdir / "ddp_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
