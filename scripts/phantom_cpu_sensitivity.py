#!/usr/bin/env python
"""How far a few-ULP change of numpy's exp, log, sin, cos and arctan2 moves a phantom case: the HU values that round
1 HU apart and the labels that change.

    PYTHONPATH=src .venv/bin/python scripts/phantom_cpu_sensitivity.py [--ulp 3 30] [--trials 3]

numpy runs those functions through other code on a CPU with AVX-512 (SVML) than on one with AVX2 only, a few ULP
apart, so a phantom drawn on two kinds of CPU differs this way (docs/phantom.md). The case is the small one of
tests/data/test_phantom.py (TINY, index 0), whose check allows for it.
"""

from __future__ import annotations

import argparse
import importlib.util
import types
from pathlib import Path

import numpy as np

from ctbench.data import phantom, phantom_anatomy

FUNCTIONS = ("exp", "log", "sin", "cos", "arctan2")


def perturbed_numpy(rng: np.random.Generator, ulp: int) -> types.ModuleType:
    """numpy, with each of :data:`FUNCTIONS` returning its value times (1 + k eps), k drawn from -ulp..ulp per value."""
    proxy = types.ModuleType("numpy_perturbed")
    proxy.__dict__.update(np.__dict__)

    def wrap(function):
        def perturbed(*args, **kwargs):
            out = function(*args, **kwargs)
            if isinstance(out, np.ndarray) and out.dtype.kind == "f":
                return out * (1 + rng.integers(-ulp, ulp + 1, out.shape) * np.finfo(out.dtype).eps)
            return out
        return perturbed

    for name in FUNCTIONS:
        setattr(proxy, name, wrap(getattr(np, name)))
    return proxy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ulp", type=int, nargs="+", default=[3, 30], help="largest change, in ULP (default 3 30)")
    parser.add_argument("--trials", type=int, default=3, help="draws per ULP bound (default 3)")
    args = parser.parse_args()
    tests = Path(__file__).resolve().parents[1] / "tests" / "data" / "test_phantom.py"
    spec = importlib.util.spec_from_file_location("test_phantom", tests)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reference = phantom.draw_case(module.TINY, 0)
    ref_hu = np.round(reference.hu).astype(np.int64)
    rng = np.random.default_rng(123)
    try:
        for ulp in args.ulp:
            phantom.np = phantom_anatomy.np = perturbed_numpy(rng, ulp)
            for trial in range(args.trials):
                case = phantom.draw_case(module.TINY, 0)
                diff = np.abs(np.round(case.hu).astype(np.int64) - ref_hu)
                print(f"+-{ulp} ULP, draw {trial}: {int((diff > 0).sum())} of {diff.size} HU values differ "
                      f"(largest {int(diff.max())} HU); {int((case.label != reference.label).sum())} labels differ")
    finally:
        phantom.np = phantom_anatomy.np = np


if __name__ == "__main__":
    main()
