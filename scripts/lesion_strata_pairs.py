#!/usr/bin/env python
"""The cases a ``compare: strata`` lesion claim pairs (C24): test cases with a truth lesion of both strata.

    .venv/bin/python scripts/lesion_strata_pairs.py                       # phantom_study (C24's runs)
    .venv/bin/python scripts/lesion_strata_pairs.py phantom_phase medium large

Reads each test case's label file (``splits.json`` of the dataset's cache, written by its first run) and scores
the truth against itself with :func:`ctbench.lesion_metrics.lesion_row` on the file's grid, where the study
tests: a stratum's recall is defined exactly when the case has a truth lesion of that size.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np

from ctbench.config import compose
from ctbench.lesion_metrics import STRATA, lesion_row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="phantom_study")
    parser.add_argument("strata", nargs="*", help=f"two or more of {', '.join(STRATA)} (default: small large)")
    args = parser.parse_args()
    args.strata = args.strata or ["small", "large"]
    if not set(args.strata) <= set(STRATA):
        parser.error(f"strata: choose from {', '.join(STRATA)}")
    cfg = compose("train", [f"dataset={args.dataset}"]).dataset
    lesion = list(cfg.class_names).index("lesion")
    test = json.loads((Path(cfg.cache_dir) / "splits.json").read_text())["test"]
    with_stratum = {s: 0 for s in args.strata}
    paired = 0
    for case in test:
        image = nib.load(f"{cfg.root}/labelsTr/{case}.nii.gz")
        truth = np.asarray(image.dataobj) == lesion
        row = lesion_row(truth, truth, image.header.get_zooms()[:3])
        has = [not math.isnan(row[f"lesion_recall_{s}"]) for s in args.strata]
        for s, h in zip(args.strata, has, strict=True):
            with_stratum[s] += h
        paired += all(has)
    print(f"{args.dataset}: {len(test)} test cases, {paired} with a lesion of each of {', '.join(args.strata)}; "
          + ", ".join(f"{n} with a {s} lesion" for s, n in with_stratum.items()))


if __name__ == "__main__":
    main()
