"""What every dataset reader shares: the :class:`CaseReader` interface, path safety and derived-file stamps."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ctbench.errors import CTBenchError

#: bump when the derived-file formats change, so old caches are not reused
DERIVED_VERSION = 1

Case = dict[str, Any]


class CaseReader:
    """Lists the labelled cases of one dataset layout from the composed ``dataset`` config.

    Subclasses implement :meth:`cases`; layouts that describe themselves (an MSD ``dataset.json``, a
    TotalSegmentator folder) also override :meth:`class_names`, :meth:`declared_labels` and
    :meth:`in_channels`, which fill ``class_names: null`` and ``in_channels`` before the model is built.
    """

    def __init__(self, dataset: Mapping[str, Any]) -> None:
        self.dataset = dataset

    def cases(self, check_files: bool = True) -> list[Case]:
        """Every labelled case; ``check_files=False`` keeps cases whose files are missing (check-data lists them)."""
        raise NotImplementedError

    def class_names(self) -> list[str] | None:
        """Class names (index = label value) the data itself declares, or None."""
        return None

    def declared_labels(self) -> dict[int, str] | None:
        """``{value: name}`` the data itself declares (for the integrity check), or None."""
        return None

    def in_channels(self) -> int | None:
        """Image channels per case the data itself declares, or None (one)."""
        return None

    def case_phases(self) -> dict[str, str]:
        """``{case: contrast phase}`` the data itself records (``dataset.phase_split`` splits by it), or {}."""
        return {}


def inside(root: Path, relative: str, what: str) -> Path:
    """``root/relative`` as written (symlinks inside the root are followed later, as any file's); refuses
    entries that leave the root lexically (``../``, absolute paths)."""
    path = Path(os.path.normpath(Path(os.path.abspath(root)) / relative))
    if not path.is_relative_to(os.path.abspath(root)):
        raise CTBenchError(f"{what} entry '{relative}' points outside the dataset folder {root}: "
                           "keep every file inside the dataset root")
    return path


def sha1(data: Any) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def stamp(path: Path) -> list[Any]:
    """``[name, size, mtime_ns]`` of a file: changes whenever the file is rewritten."""
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def gzip_bytes(raw: bytes) -> bytes:
    return gzip.compress(raw, compresslevel=1, mtime=0)


def image_files(case: Mapping[str, Any]) -> list[str]:
    """The image file(s) of a case: one path, or one per channel (nnU-Net ``CASE_0000 ... CASE_000N``)."""
    image = case["image"]
    return [str(p) for p in image] if isinstance(image, list | tuple) else [str(image)]


def require_folder(root: Path, what: str) -> None:
    if not root.is_dir():
        raise CTBenchError(f"dataset.root={root} is not a folder: set dataset.root=PATH to {what}")


def refuse_missing(cases: list[Case], where: str) -> None:
    missing = [p for c in cases for p in [*image_files(c), c["label"]] if not Path(p).exists()]
    if missing:
        raise CTBenchError(f"{where} lists {len(missing)} missing file(s), first: {missing[0]}; "
                           "run `ctbench check-data` and fix the listing")


def derived_dir(dataset: Mapping[str, Any]) -> Path:
    """Where derived files of this dataset live: ``dataset.cache_dir`` (``${paths.cache_dir}/NAME``)."""
    folder = dataset.get("cache_dir")
    if not folder:
        raise CTBenchError(f"dataset '{dataset.get('name')}' has no cache_dir for its derived files: "
                           "set dataset.cache_dir=PATH")
    return Path(str(folder)).resolve()


def refuse_duplicates(ids: list[str], what: str) -> None:
    """One line listing every case id used more than once (two files would collapse into one case)."""
    seen: dict[str, int] = {}
    for case in ids:
        seen[case] = seen.get(case, 0) + 1
    repeated = [f"{case} (x{n})" for case, n in seen.items() if n > 1]
    if repeated:
        shown = ", ".join(repeated[:8]) + (f" (+{len(repeated) - 8} more)" if len(repeated) > 8 else "")
        raise CTBenchError(f"{what} use the same case id more than once: {shown}; every case needs its own id "
                           "(rename or remove the duplicates)")
