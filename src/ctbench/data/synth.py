"""``ctbench synth``: write either phantom in MSD layout (``--kind synthetic``, the default, or
``phantom``)."""

from __future__ import annotations

import argparse

from ctbench.data import phantom, synthetic
from ctbench.errors import CTBenchError


def run_cli(args: argparse.Namespace) -> int:
    """``ctbench synth OUT_DIR [--cases N] [--seed S] [--voxel-mm LO HI] [--kind synthetic|phantom]``."""
    if args.cases < 1:
        raise CTBenchError(f"--cases must be at least 1, got {args.cases}")
    if args.kind == "phantom":
        path = phantom.write_dataset(args.out_dir, phantom.PhantomSpec(cases=args.cases, seed=args.seed))
        print(f"wrote {args.cases} CT phantom cases and {path}")
        return 0
    lo, hi = args.voxel_mm
    if not 0.3 <= lo <= hi <= 20:
        raise CTBenchError(f"--voxel-mm needs 0.3 <= LO <= HI <= 20, got {lo} {hi}")
    path = synthetic.write_dataset(args.out_dir, synthetic.PhantomSpec(cases=args.cases, seed=args.seed,
                                                                       voxel_mm=(lo, hi)))
    print(f"wrote {args.cases} phantom cases and {path}")
    return 0
