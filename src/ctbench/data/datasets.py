"""The labelled cases of a dataset config, and its classes and channels.

``dataset.reader._target_`` names the reader class of the dataset's layout (``ctbench.data.readers``:
MSD/nnU-Net raw folders, the synthetic phantom, NIfTI globs, case folders, TotalSegmentator, DICOM);
``configs/dataset/*.yaml`` is the one list of what exists. Every reader accepts ``case_pattern`` (a shell
pattern on case ids, e.g. AMOS's CT cases ``amos_0[0-4]*``); case ids must be unique. Derived files
(merged label maps, converted series) live in ``dataset.cache_dir`` (``${paths.cache_dir}/NAME``).
Splits: :mod:`ctbench.data.splits`.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Mapping
from typing import Any

from ctbench.data.readers.base import Case, CaseReader, refuse_duplicates
from ctbench.errors import CTBenchError


def reader_for(dataset: Mapping[str, Any]) -> CaseReader:
    """The reader ``dataset.reader._target_`` names, built on ``dataset``; an unknown target is one line."""
    spec = dataset.get("reader")
    target = spec.get("_target_") if isinstance(spec, Mapping) else None
    if not target:
        raise CTBenchError(f"dataset '{dataset.get('name')}' names no reader: set dataset.reader._target_ to a "
                           "class of ctbench.data.readers (see configs/dataset/*.yaml)", exit_code=2)
    module, _, name = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name, None) if module else None
    except ImportError:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, CaseReader)):
        raise CTBenchError(f"unknown dataset reader '{target}': dataset.reader._target_ must name a CaseReader "
                           "class, e.g. ctbench.data.readers.msd.MSDReader (see configs/dataset/*.yaml)", exit_code=2)
    return cls(dataset)


def list_cases(dataset: Mapping[str, Any], check_files: bool = True) -> list[Case]:
    """Every labelled case of the dataset config, filtered by ``case_pattern``; duplicate ids are refused.

    ``check_files=False`` lists cases whose files are missing too (the integrity check reports them).
    """
    cases = reader_for(dataset).cases(check_files)
    refuse_duplicates([c["case"] for c in cases], f"the cases of dataset '{dataset.get('name')}'")
    pattern = dataset.get("case_pattern")
    if pattern:
        kept = [c for c in cases if fnmatch.fnmatchcase(c["case"], str(pattern))]
        if not kept:
            raise CTBenchError(f"dataset.case_pattern='{pattern}' matches none of the {len(cases)} cases "
                               f"(e.g. {cases[0]['case']})")
        cases = kept
    return cases


def resolve_classes(dataset: Any) -> None:
    """Fill ``class_names`` and ``num_classes`` of a dataset config whose ``class_names`` is null from the
    dataset itself (the ``labels`` of an MSD manifest, the structures of a TotalSegmentator folder), and
    ``in_channels`` from nnU-Net's ``channel_names``; run before the model's channels are read."""
    reader = reader_for(dataset)
    channels = reader.in_channels()
    if channels:
        dataset["in_channels"] = channels
    if not dataset.get("class_names"):
        names = reader.class_names()
        if not names:
            raise CTBenchError(f"dataset.class_names is null and dataset '{dataset.get('name')}' does not declare "
                               "its classes: list them, e.g. dataset.class_names=[background,liver]")
        dataset["class_names"] = names
    dataset["num_classes"] = len(dataset["class_names"])
