"""The DICOM types every stage shares: a series (files, headers, diagnosis), its voxel grid and its problems.

The bottom of ``ctbench.data.dicom`` above the tag readers (``headers``) and identifier scrubbing
(``deid``): ``series`` fills these in while walking a tree, ``geometry`` sorts and checks them,
``decode`` reads the pixels, ``outputs`` names and describes what is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ctbench.data.dicom.deid import identifier_strings, scrub_text


@dataclass(frozen=True)
class SeriesProblem:
    """Something that makes a series' volume wrong. ``forcible``: ``--force`` may write it anyway."""

    message: str
    forcible: bool = False

    def __str__(self) -> str:
        return self.message


@dataclass
class Geometry:
    """Voxel grid written for a sorted series, in DICOM's LPS patient frame (millimetres).

    ``shape`` and ``spacing`` are (columns, rows, slices) of the grid; ``direction`` has the unit axes
    as columns (row direction, column direction, slice normal). ``positions`` are the source slices'
    distances from the first along the normal, ``steps`` their differences; ``even`` says that slice k
    of the source is slice k of the grid (otherwise the grid is ``origin + k * spacing[2] * normal`` from
    the first to the last source slice, see :func:`ctbench.data.dicom.decode.place_on_grid`).
    ``offsets`` are the in-plane offsets (LPS) of each slice's origin against the first slice's normal
    line (non-zero only with gantry tilt).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: np.ndarray
    direction: np.ndarray
    positions: np.ndarray
    offsets: np.ndarray
    even: bool = True
    tilt_deg: float = 0.0

    @property
    def steps(self) -> np.ndarray:
        return np.diff(self.positions)

    def affine_lps(self) -> np.ndarray:
        aff = np.eye(4)
        aff[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        aff[:3, 3] = self.origin
        return aff

    def affine_ras(self) -> np.ndarray:
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.affine_lps()


@dataclass
class DicomSeries:
    """One series: its files (sorted along the slice normal), pixel-less headers and diagnosis.

    ``key`` is the grouping key (contains UIDs: never written to outputs).
    """

    key: str
    modality: str
    series_number: int | None
    description: str
    files: list[Path]
    headers: list[Dataset]
    root: Path | None = None
    skip_reason: str | None = None
    problems: list[SeriesProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    geometry: Geometry | None = None

    @property
    def is_ct_volume(self) -> bool:
        """A CT image series that can become a volume (possibly with problems)."""
        return self.skip_reason is None

    @property
    def n_slices(self) -> int:
        return len(self.files)

    def can_convert(self, force: bool = False) -> bool:
        if not self.is_ct_volume or self.geometry is None:
            return False
        return all(force and p.forcible for p in self.problems)

    @property
    def label(self) -> str:
        """Short, identifier-free name for messages: ``S3 'CT Body 3.0' (CT, 20 files)``."""
        number = "S?" if self.series_number is None else f"S{self.series_number}"
        desc = scrub_text(self.description, identifier_strings(self.headers)) if self.description else ""
        return f"{number} {desc!r} ({self.modality}, {len(self.files)} file{'s' if len(self.files) != 1 else ''})"
