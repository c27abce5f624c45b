"""Dataset integrity check (``ctbench check-data``), like nnU-Net's ``verify_dataset_integrity``.

Every case is checked and every problem reported at once, so that one run lists everything to fix:

- unreadable image or label file (missing, zero bytes, truncated, corrupt, unknown format);
- a header over the voxel cap (:mod:`ctbench.data.voxel_budget`, ``dataset.max_voxels``), checked before
  any voxel is read;
- an image or label with more than 3 spatial dimensions (4D; a trailing axis of length 1 is fine);
- image/label shape mismatch, and geometry mismatch: the world coordinates of the 8 corner voxels
  (which combine origin, spacing and direction) differ by more than ``tolerance_mm``; the same between
  the channel files of a multi-channel case (nnU-Net ``CASE_0000 ... CASE_000N``);
- label values not declared in the dataset's labels, non-integer (fractional) float labels,
  NaN/Inf in a label map;
- NaN/Inf voxels in an image, an image of one single value.

Public API: :func:`check_cases` (pure, over a list of ``{"case", "image", "label"}`` dicts),
:class:`Problem`, :func:`print_problems`, :func:`run_cli`. NIfTI files are read with nibabel, other
formats (NRRD, MHA ...) with SimpleITK; geometry is compared in RAS world coordinates.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctbench.errors import CTBenchError

NIFTI_ENDINGS = (".nii", ".nii.gz")


@dataclass(frozen=True)
class Problem:
    """One problem of one case: ``file`` is the offending path ("" when it concerns the pair)."""

    case: str
    file: str
    message: str

    def __str__(self) -> str:
        where = f" ({self.file})" if self.file else ""
        return f"{self.case}{where}: {self.message}"


@dataclass
class _Volume:
    data: np.ndarray
    affine: np.ndarray  # RAS, 4x4

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return (lines[0][:200] if lines else type(err).__name__)


def _load(path: Path, target_spacing: Sequence[float] | None = None, max_voxels: int | None = None) -> _Volume:
    """Read a volume fully (so a truncated file fails here) once its header passes the voxel cap
    (:func:`~ctbench.data.voxel_budget.check_voxel_budget`); raises ``ValueError`` with a short reason."""
    from ctbench.data.voxel_budget import UnreadableHeader, check_voxel_budget

    if not path.exists():
        raise ValueError("file not found")
    if path.is_dir():
        raise ValueError("is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        check_voxel_budget(path, target_spacing, max_voxels)
    except UnreadableHeader as err:
        raise ValueError(f"unreadable header ({err.reason})") from None
    except CTBenchError as err:
        raise ValueError(str(err).removeprefix(f"{path.name}: ")) from None
    name = path.name.lower()
    try:
        if name.endswith(NIFTI_ENDINGS):
            import nibabel as nib

            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
            return _Volume(np.asarray(data), np.asarray(img.affine, dtype=float))
        import SimpleITK as sitk

        img = sitk.ReadImage(str(path))
        arr = sitk.GetArrayFromImage(img)  # [z, y, x] (+ a trailing component axis)
        dim = img.GetDimension()
        spatial_axes = tuple(range(dim))[::-1]
        extra = tuple(range(dim, arr.ndim))
        arr = np.asarray(arr).transpose(spatial_axes + extra)  # -> [x, y, z, components]
        direction = np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim)
        affine = np.eye(4)
        n = min(dim, 3)
        affine[:n, :n] = (direction * np.asarray(img.GetSpacing())[None, :])[:n, :n]
        affine[:n, 3] = np.asarray(img.GetOrigin())[:n]
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # LPS -> RAS
        return _Volume(arr, affine)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - every reader error becomes one line
        raise ValueError(f"unreadable ({_one_line(err)})") from None


def _spatial(vol: _Volume) -> np.ndarray | None:
    """The array with trailing length-1 axes beyond 3 removed; None if it is really 4D (or more)."""
    data = vol.data
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    return None if data.ndim > 3 else data


def _corners(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    idx = np.array(list(itertools.product(*[(0, max(int(n) - 1, 0)) for n in shape[:3]])), dtype=float)
    if idx.shape[1] < 3:
        idx = np.hstack([idx, np.zeros((len(idx), 3 - idx.shape[1]))])
    return idx @ affine[:3, :3].T + affine[:3, 3]


def _geometry_message(img: _Volume, lab: _Volume, shape: Sequence[int], tolerance_mm: float) -> str | None:
    dist = float(np.linalg.norm(_corners(shape, img.affine) - _corners(shape, lab.affine), axis=1).max())
    if dist <= tolerance_mm:
        return None
    parts = []
    zi, zl = np.linalg.norm(img.affine[:3, :3], axis=0), np.linalg.norm(lab.affine[:3, :3], axis=0)
    if np.abs(zi - zl).max() > 1e-6:
        parts.append(f"spacing {_fmt(zi)} vs {_fmt(zl)}")
    di, dl = img.affine[:3, :3] / zi, lab.affine[:3, :3] / zl
    if np.abs(di - dl).max() > 1e-4:
        import nibabel as nib

        parts.append(f"orientation {''.join(nib.aff2axcodes(img.affine))} vs {''.join(nib.aff2axcodes(lab.affine))}")
    if np.linalg.norm(img.affine[:3, 3] - lab.affine[:3, 3]) > tolerance_mm:
        parts.append(f"origin {_fmt(img.affine[:3, 3])} vs {_fmt(lab.affine[:3, 3])}")
    return (f"image and label geometry differ: corner voxels up to {dist:.4g} mm apart (tolerance "
            f"{tolerance_mm:g} mm)" + (f"; {', '.join(parts)}" if parts else ""))


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.4g}" for x in v) + ")"


def _finite_problems(data: np.ndarray, what: str) -> list[str]:
    if not np.issubdtype(data.dtype, np.floating):
        return []
    nan, inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
    out = []
    if nan:
        out.append(f"{what} has {nan} NaN voxel(s)")
    if inf:
        out.append(f"{what} has {inf} infinite voxel(s)")
    return out


def _label_problems(data: np.ndarray, declared: Mapping[int, str] | None) -> list[str]:
    out = _finite_problems(data, "label map")
    if np.issubdtype(data.dtype, np.floating):
        finite = data[np.isfinite(data)]
        frac = finite[finite != np.round(finite)]
        if frac.size:
            examples = ", ".join(f"{v:g}" for v in np.unique(frac)[:3])
            out.append(f"label map has non-integer values ({frac.size} voxels, e.g. {examples}): "
                       "labels must be whole numbers")
        values = np.unique(np.round(finite)).astype(np.int64)
    else:
        values = np.unique(data).astype(np.int64)
    if declared is not None:
        extra = sorted(set(values.tolist()) - {int(k) for k in declared})
        if extra:
            shown = ", ".join(map(str, extra[:8])) + (" ..." if len(extra) > 8 else "")
            ids = sorted(int(k) for k in declared)
            known = ", ".join(map(str, ids[:12])) + (f" ... {ids[-1]}" if len(ids) > 12 else "")
            names = [declared[i] for i in ids] if ids == list(range(len(ids))) else None
            fix = (f"; the run's classes are dataset.class_names=[{','.join(names)}]: name every label value there"
                   if names else "")
            out.append(f"label values not declared in the dataset's labels: {shown} (declared: {known}){fix}")
    return out


def _volume_problems(name: str, path: Path, role: str, declared_labels: Mapping[int, str] | None,
                     target_spacing: Sequence[float] | None, max_voxels: int | None,
                     problems: list[Problem]) -> tuple[_Volume, np.ndarray] | None:
    """Read one image (channel) or label file and append its own problems; the volume and its 3D data."""
    try:
        vol = _load(path, target_spacing, max_voxels)
    except ValueError as err:
        problems.append(Problem(name, str(path), str(err)))
        return None
    data = _spatial(vol)
    if data is None:
        problems.append(Problem(name, str(path), f"{vol.data.ndim}D {role} (shape {vol.shape}); a "
                                "single-channel 3D (or 2D) volume is expected"))
        return None
    if role == "image":
        for msg in _finite_problems(data, "image"):
            problems.append(Problem(name, str(path), msg))
        finite = data[np.isfinite(data)] if np.issubdtype(data.dtype, np.floating) else data
        if finite.size and finite.min() == finite.max():
            problems.append(Problem(name, str(path), f"image has one single value ({float(finite.min()):g}) "
                                    "everywhere: empty or failed export"))
    else:
        for msg in _label_problems(data, declared_labels):
            problems.append(Problem(name, str(path), msg))
    return vol, data


def _pair_problem(name: str, first: tuple[_Volume, np.ndarray], other: tuple[_Volume, np.ndarray],
                  names: tuple[str, str], tolerance_mm: float) -> Problem | None:
    (vol_a, a), (vol_b, b) = first, other
    if a.shape != b.shape:
        return Problem(name, "", f"{names[0]} shape {a.shape} and {names[1]} shape {b.shape} differ")
    msg = _geometry_message(vol_a, vol_b, a.shape, tolerance_mm)
    return Problem(name, "", msg.replace("image and label", " and ".join(names))) if msg else None


def check_case(case: Mapping[str, Any], declared_labels: Mapping[int, str] | None, tolerance_mm: float = 1e-3,
               target_spacing: Sequence[float] | None = None, max_voxels: int | None = None) -> list[Problem]:
    """Problems of one ``{"case", "image", "label"}`` entry (``label`` may be missing or None; ``image`` may
    list one file per channel, which must share one grid). ``target_spacing`` and ``max_voxels``: the voxel
    cap, checked on each header before its voxels are read."""
    from ctbench.data.readers.base import image_files

    image = case.get("image")
    name = str(case.get("case") or (Path(image_files(case)[0]).name if image else "?"))
    problems: list[Problem] = []
    if not image:
        problems.append(Problem(name, "", "no image file given"))
        channels: list[tuple[_Volume, np.ndarray] | None] = []
    else:
        channels = [_volume_problems(name, Path(p), "image", declared_labels, target_spacing, max_voxels, problems)
                    for p in image_files(case)]
    label = None
    if case.get("label"):
        label = _volume_problems(name, Path(str(case["label"])), "label", declared_labels, target_spacing,
                                 max_voxels, problems)
    first = channels[0] if channels else None
    if first is not None:
        for k, channel in enumerate(channels[1:], start=1):
            if channel is not None:
                problem = _pair_problem(name, first, channel, ("image channel 0", f"image channel {k}"), tolerance_mm)
                problems += [problem] if problem else []
        if label is not None:
            problem = _pair_problem(name, first, label, ("image", "label"), tolerance_mm)
            problems += [problem] if problem else []
    return problems


def check_cases(cases: Sequence[Mapping[str, Any]], declared_labels: Mapping[int, str] | None,
                tolerance_mm: float = 1e-3, progress: bool = False, console: Any = None,
                target_spacing: Sequence[float] | None = None, max_voxels: int | None = None) -> list[Problem]:
    """Every problem of every case (see the module docstring); ``declared_labels=None`` skips that check."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for case in cases:
        name = str(case.get("case", ""))
        if name:
            seen[name] = seen.get(name, 0) + 1
    for name, n in seen.items():
        if n > 1:
            problems.append(Problem(name, "", f"case name used by {n} entries"))
    if progress and len(cases) >= 10:
        from rich.progress import track

        iterator = track(cases, description="checking cases", console=console, transient=True)
    else:
        iterator = cases
    for case in iterator:
        problems.extend(check_case(case, declared_labels, tolerance_mm, target_spacing, max_voxels))
    return problems


def print_problems(problems: Sequence[Problem], n_cases: int, console: Any) -> None:
    """A rich table of ``problems`` (or one line saying all cases passed)."""
    if not problems:
        console.print(f"[green]check-data: all {n_cases} case(s) passed[/]")
        return
    from rich.table import Table
    from rich.text import Text

    bad_cases = len({p.case for p in problems})
    table = Table(title=f"check-data: {len(problems)} problem(s) in {bad_cases} of {n_cases} case(s)")
    table.add_column("case", overflow="fold")
    table.add_column("file", overflow="fold")
    table.add_column("problem", overflow="fold")
    for p in problems:
        table.add_row(p.case, p.file or "(image/label pair)", Text(p.message))  # plain text: "[a,b]" is no markup
    console.print(table)


def _declared_labels(dataset: Mapping[str, Any]) -> dict[int, str] | None:
    """``{id: name}`` of the classes a run on this dataset trains: ``class_names`` (index = value) when the config
    sets them, as training uses them (a preset's list wins over the data's manifest), else what the reader reads
    from the data (an MSD manifest's labels), else a ``labels``/``label_names`` mapping in the config; None when
    nothing is declared."""
    from ctbench.data.datasets import reader_for

    names = dataset.get("class_names")
    if isinstance(names, Sequence) and not isinstance(names, str) and names:
        return {i: str(n) for i, n in enumerate(names)}
    labels = reader_for(dataset).declared_labels()
    if labels:
        return labels
    for key in ("labels", "label_names"):
        value = dataset.get(key)
        if isinstance(value, Mapping):
            out: dict[int, str] = {}
            for k, v in value.items():
                if str(k).lstrip("-").isdigit():
                    out[int(k)] = str(v)
                elif isinstance(v, int):
                    out[v] = str(k)
            if out:
                return out
    return None


def _voxel_cap(dataset: Mapping[str, Any]) -> tuple[list[float] | None, int | None]:
    """The target spacing and ``dataset.max_voxels`` that :func:`~ctbench.data.voxel_budget.check_voxel_budget`
    checks every header against."""
    spacing = (dataset.get("preprocessing") or {}).get("spacing")
    cap = dataset.get("max_voxels")
    return ([float(v) for v in spacing] if spacing else None), (int(cap) if cap else None)


def _cases_from_config(overrides: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Compose ``configs/train.yaml`` with ``overrides``; the dataset's cases and its resolved config."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    from ctbench.config import compose

    cfg = compose("train", overrides)
    try:
        dataset = OmegaConf.to_container(cfg.dataset, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        key = f"dataset.{err.full_key}" if err.full_key and not str(err.full_key).startswith("dataset") else err.full_key
        raise CTBenchError(f"{key} is not set: add {key}=... to the command line", exit_code=2) from None
    from ctbench.data.datasets import list_cases

    return list_cases(dataset, check_files=False), dataset


def verify_before_training(cases: Sequence[Mapping[str, Any]], dataset: Mapping[str, Any], stamp_file: Path) -> None:
    """Run :func:`check_cases` unless ``stamp_file`` records a clean check of these exact files
    (paths, sizes, modification times); raise one line after printing every problem."""
    import json

    from rich.console import Console

    from ctbench.atomic import atomic_write_json
    from ctbench.data.readers.base import image_files

    spacing, cap = _voxel_cap(dataset)
    files = [p for c in cases for p in [*image_files(c), str(c["label"])] if Path(p).exists()]
    stamps = {"files": sorted([p, Path(p).stat().st_size, Path(p).stat().st_mtime_ns] for p in files),
              "spacing": spacing, "max_voxels": cap}
    if stamp_file.exists() and json.loads(stamp_file.read_text()) == stamps:
        return
    problems = check_cases(cases, _declared_labels(dataset), target_spacing=spacing, max_voxels=cap)
    if problems:
        console = Console(stderr=True, highlight=False)
        print_problems(problems, len(cases), console)
        bad = len({p.case for p in problems})
        raise CTBenchError(f"the dataset has {len(problems)} problem(s) in {bad} case(s), listed above: fix or remove "
                           "those cases (`ctbench check-data` re-runs the check alone)")
    atomic_write_json(stamp_file, stamps)


def run_cli(args: Any) -> int:
    """``ctbench check-data [overrides]``: print the problem table; exit 1 if there is any problem."""
    from rich.console import Console

    console = Console(highlight=False)
    overrides = list(getattr(args, "overrides", []) or [])
    tolerance = 1e-3
    rest = []
    for o in overrides:  # ``tolerance_mm=0.01`` is ours, not Hydra's
        if o.startswith(("tolerance_mm=", "+tolerance_mm=")):
            try:
                tolerance = float(o.split("=", 1)[1])
            except ValueError:
                raise CTBenchError(f"{o}: give the tolerance in mm as a number, e.g. tolerance_mm=0.01",
                                   exit_code=2) from None
        else:
            rest.append(o)
    cases, dataset = _cases_from_config(rest)
    if not cases:
        raise CTBenchError("the dataset has no cases to check")
    labels = _declared_labels(dataset)
    if labels is None:
        console.print("[yellow]no label names declared by the dataset: label values are not checked[/]")
    spacing, cap = _voxel_cap(dataset)
    problems = check_cases(cases, labels, tolerance_mm=tolerance, progress=True, console=console,
                           target_spacing=spacing, max_voxels=cap)
    print_problems(problems, len(cases), console)
    return 1 if problems else 0
