"""A voxel-count cap read from file headers before any voxel is loaded or resampled (issue 12 row 12).

A header with huge dimensions, or a spacing far coarser than the target spacing, would make the reader or
the resampler allocate until the machine dies; the cap turns that into one line naming the file's shape,
its spacing and the override. ``dataset.max_voxels`` sets it (training, evaluation, check-data and predict).

A small compressed file can also describe a huge array (a 4 MB ``.nii.gz`` of 800^3 float64 voxels is
4 GB once read): the decompressed size, header dims x the stored data type, is checked against the memory
this process can still get (:func:`available_memory`) before any voxel is read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctbench.errors import CTBenchError

#: default cap: 1e9 voxels (4 GB as float32); a 512 x 512 x 1500 whole-body CT resampled to 0.8 mm is ~4e8
DEFAULT_MAX_VOXELS = 1_000_000_000


class UnreadableHeader(CTBenchError):
    """A file whose header no reader understands; ``reason`` is the reader's one-line complaint."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.reason = reason


def header_geometry(path: Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Shape and voxel spacing (mm, from the affine's columns) of an image file, read from its header only."""
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            img = nib.load(str(path))
            shape = tuple(int(n) for n in img.shape)
            spacing = tuple(float(s) for s in np.linalg.norm(np.asarray(img.affine, float)[:3, :3], axis=0))
            return shape, spacing[: max(1, min(3, len(shape)))]
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        return tuple(int(n) for n in reader.GetSize()), tuple(float(s) for s in reader.GetSpacing())
    except Exception as err:  # noqa: BLE001 - every reader error becomes one line
        lines = str(err).strip().splitlines()
        raise UnreadableHeader(path, lines[0][:160] if lines else type(err).__name__) from None


def _refuse_short_file(path: Path, voxels: int) -> None:
    """An uncompressed NIfTI whose header describes more voxel bytes than the file holds (read before nibabel
    allocates the whole array for it)."""
    if not path.name.lower().endswith(".nii"):
        return
    import nibabel as nib

    header = nib.load(str(path)).header
    offset = float(header["vox_offset"])
    start = max(352, int(offset) if math.isfinite(offset) else 0)  # single-file NIfTI-1: data after the header
    needed = start + voxels * header.get_data_dtype().itemsize
    size = path.stat().st_size
    if needed > size:
        raise CTBenchError(f"{path.name}: truncated: its header describes {needed} bytes, the file holds {size}: "
                           "export it again")


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None


def _address_space_available() -> int | None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return soft - int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return soft
    return soft


def available_memory() -> int | None:
    """Bytes this process can still allocate: the least of the machine's available memory, the cgroup's
    remaining limit and the address-space limit (``ulimit -v``); None when none is known."""
    known = [v for v in (_meminfo_available(), _cgroup_available(), _address_space_available()) if v is not None]
    return max(0, min(known)) if known else None


def stored_itemsize(path: Path) -> int:
    """Bytes per voxel of the file's stored data type, from its header (8 when unknown)."""
    try:
        if path.name.lower().endswith((".nii", ".nii.gz")):
            import nibabel as nib

            return int(nib.load(str(path)).header.get_data_dtype().itemsize)
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = sitk.Image(1, 1, reader.GetPixelID()).GetSizeOfPixelComponent()
        return int(size) * int(reader.GetNumberOfComponents())
    except Exception:  # noqa: BLE001 - header_geometry reported an unreadable header already
        return 8


def check_memory(path: Path, voxels: int) -> None:
    """Refuse ``path`` when its decompressed voxels (header dims x stored type) exceed the memory available."""
    needed = voxels * stored_itemsize(path)
    available = available_memory()
    if available is not None and needed > available:
        raise CTBenchError(f"{path.name}: its header describes {needed / 1e9:.3g} GB of voxels once decompressed, "
                           f"more than the {available / 1e9:.3g} GB of memory available: check the file's header, "
                           "or run on a machine with more memory")


def _fmt(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.4g}" for v in values)


def check_voxel_budget(path: str | Path, target_spacing: Sequence[float] | None,
                       max_voxels: int | None = None) -> None:
    """Refuse ``path`` when its header describes more than ``max_voxels`` voxels as stored, or after
    resampling to ``target_spacing`` (mm); also refuse a zero, negative-length or non-finite spacing."""
    path = Path(path)
    cap = int(max_voxels or DEFAULT_MAX_VOXELS)
    shape, spacing = header_geometry(path)
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise CTBenchError(f"{path.name}: voxel spacing ({_fmt(spacing)}) mm in its header is not positive and "
                           "finite: fix the header (e.g. re-export the image)")
    stored = math.prod(shape)
    _refuse_short_file(path, stored)
    resampled = stored
    if target_spacing:
        spatial = shape[: len(spacing)]
        per_axis = [math.ceil(n * s / float(t)) for n, s, t in zip(spatial, spacing, target_spacing, strict=False)]
        resampled = math.prod(per_axis) * math.prod(shape[len(spacing):])
    if max(stored, resampled) > cap:
        target = f" ({resampled:.3g} at the target spacing {_fmt(target_spacing)} mm)" if target_spacing else ""
        raise CTBenchError(f"{path.name}: shape {' x '.join(map(str, shape))} at spacing {_fmt(spacing)} mm is "
                           f"{stored:.3g} voxels{target}, over the cap of {cap:.3g}: check the file's header, "
                           "or raise the cap with dataset.max_voxels=N")
    check_memory(path, stored)
