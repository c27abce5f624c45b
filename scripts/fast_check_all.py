"""Run ``ctbench train model=X dims=D debug=fast`` for every model in ``configs/model/`` and both dims.

Each pair is one real run of the installed ``ctbench`` command in a scratch folder (the tiny phantom is
generated once and shared); the table gives whether it finished with a complete report and its wall
time. Runs one at a time: on a shared CPU the seconds are upper bounds.

    python scripts/fast_check_all.py [--models unet vnet ...] [--dims 2 3] [--workdir DIR]

Exit status 1 if any pair failed (its last error line is printed under the table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CTBENCH = str(Path(sys.executable).with_name("ctbench"))


def run_pair(model: str, dims: int, workdir: Path) -> tuple[bool, float, str]:
    """``(complete, seconds, last error line)`` of one ``ctbench train ... debug=fast``."""
    run = workdir / "outputs" / f"{model}-{dims}d"
    cmd = [CTBENCH, "train", f"model={model}", f"dims={dims}", "debug=fast", "progress_bar=false",
           "overwrite=true", f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.perf_counter() - start
    summary = run / "report" / "summary.json"
    ok = proc.returncode == 0 and summary.exists() and json.loads(summary.read_text()).get("status") == "complete"
    error = "" if ok else (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:200]
    return ok, seconds, error


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=None, help="default: every configs/model/*.yaml")
    ap.add_argument("--dims", nargs="*", type=int, default=[2, 3])
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    models = args.models or sorted(p.stem for p in (REPO / "configs" / "model").glob("*.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = []
        for model in models:
            for dims in args.dims:
                ok, seconds, error = run_pair(model, dims, workdir)
                rows.append((model, dims, ok, seconds, error))
                print(f"  {model} dims={dims}: {'ok' if ok else 'FAILED'} {seconds:.1f} s", file=sys.stderr, flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("| model | dims | ok | seconds |\n|---|---:|---|---:|")
    for model, dims, ok, seconds, _ in rows:
        print(f"| {model} | {dims} | {'yes' if ok else 'NO'} | {seconds:.1f} |")
    failed = [r for r in rows if not r[2]]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} passed, {sum(r[3] for r in rows):.0f} s in all")
    for model, dims, _, _, error in failed:
        print(f"{model} dims={dims}: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
