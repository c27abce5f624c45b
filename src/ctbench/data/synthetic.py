"""Synthetic abdominal CT phantom in Hounsfield units, written in MSD layout.

Why hand-written: no library ships a labelled CT phantom. The anatomy is drawn in millimetres in the
patient frame and then sampled on each case's own voxel grid, so varied spacing and orientation
exercise the real pipeline (reorientation, resampling) rather than a shortcut.

Patient frame: NIfTI's RAS+ world (x grows towards the patient's Right, y Anterior, z Superior),
so the liver lies at +x and the spleen at -x.

Tissues: air (-1000), subcutaneous fat (-100), soft tissue (40), lungs (-850), spine (bone, 300-700),
and the labelled organs liver (1), spleen (2), kidneys (3) and small hypodense liver lesions (4, the
survey's small-object class, Figure 9). Each case draws its own anatomy, spacing and noise from a
seeded generator; half of the files are stored LPS-oriented, half RAS-oriented.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctbench.data.phantom_files import phantom_manifest, write_case_files

#: Field of view in millimetres (x, y, z) sampled for every case.
FOV_MM = (384.0, 304.0, 256.0)

#: Mean HU per tissue; organs differ by tens of HU as on contrast CT, with noise on top.
HU = {"air": -1000.0, "fat": -100.0, "soft": 40.0, "lung": -850.0, "bone": 450.0,
      "liver": 95.0, "spleen": 130.0, "kidney": 180.0, "lesion": 30.0}


@dataclass(frozen=True)
class PhantomSpec:
    """What varies between phantom datasets: number of cases, seed and the voxel-size range (mm)."""

    cases: int = 24
    seed: int = 0
    voxel_mm: tuple[float, float] = (2.0, 3.5)
    noise_hu: float = 20.0


def _ellipsoid(grid: tuple[np.ndarray, ...], center: Sequence[float], axes: Sequence[float],
               angle: float = 0.0) -> np.ndarray:
    """Boolean mask of an ellipsoid rotated by ``angle`` (radians) about the z axis."""
    x, y, z = (g - c for g, c in zip(grid, center, strict=True))
    cos, sin = np.cos(angle), np.sin(angle)
    xr, yr = cos * x + sin * y, -sin * x + cos * y
    return (xr / axes[0]) ** 2 + (yr / axes[1]) ** 2 + (z / axes[2]) ** 2 <= 1.0


def make_case(rng: np.random.Generator, spacing: Sequence[float], noise_hu: float = 20.0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one phantom on a RAS voxel grid with ``spacing`` (mm).

    Returns ``(hu, label, affine)``: float32 HU image, uint8 label map and the 4x4 RAS affine whose
    world origin is the centre of the field of view.
    """
    shape = tuple(int(round(f / s)) for f, s in zip(FOV_MM, spacing, strict=True))
    axes_mm = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing, strict=True)]
    grid = np.meshgrid(*axes_mm, indexing="ij", sparse=True)
    jit = lambda scale: rng.uniform(-scale, scale)  # noqa: E731
    grow = lambda: rng.uniform(0.88, 1.12)  # noqa: E731

    hu = np.full(shape, HU["air"], dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    body_axes = (150.0 * grow(), 110.0 * grow(), 1e4)
    body = _ellipsoid(grid, (jit(8), jit(8), 0.0), body_axes)
    inner = _ellipsoid(grid, (0.0, 0.0, 0.0), (body_axes[0] - 14.0, body_axes[1] - 14.0, 1e4))
    hu[body] = HU["fat"]
    hu[inner & body] = HU["soft"]

    dome = 40.0 + jit(10)  # lungs fill the top of the field of view, above the diaphragm
    for side in (+1, -1):
        lung = _ellipsoid(grid, (side * 65.0 + jit(6), 5.0 + jit(5), dome + 95.0), (50 * grow(), 70 * grow(), 100.0))
        hu[lung & inner] = HU["lung"]
    spine = _ellipsoid(grid, (jit(3), -70.0 + jit(4), 0.0), (17.0 * grow(), 16.0 * grow(), 1e4))
    hu[spine] = HU["bone"]

    organs = [
        ("liver", 1, (58.0 + jit(8), 15.0 + jit(8), dome - 40.0 + jit(8)), (78.0, 68.0, 60.0), jit(0.3)),
        ("spleen", 2, (-82.0 + jit(6), -20.0 + jit(6), dome - 40.0 + jit(8)), (30.0, 48.0, 46.0), jit(0.4)),
        ("kidney", 3, (70.0 + jit(5), -50.0 + jit(5), dome - 110.0 + jit(8)), (26.0, 22.0, 52.0), jit(0.3)),
        ("kidney", 3, (-70.0 + jit(5), -50.0 + jit(5), dome - 100.0 + jit(8)), (26.0, 22.0, 52.0), jit(0.3)),
    ]
    for name, value, center, axes, angle in organs:
        mask = _ellipsoid(grid, center, [a * grow() for a in axes], angle) & inner
        hu[mask] = HU[name] + rng.normal(0.0, 5.0)
        label[mask] = value

    liver_center, liver_axes = organs[0][2], organs[0][3]
    for _ in range(rng.integers(1, 4)):  # 1-3 lesions of 5-12 mm radius inside the liver
        offset = rng.uniform(-0.5, 0.5, size=3) * np.asarray(liver_axes)
        radius = rng.uniform(5.0, 12.0)
        lesion = _ellipsoid(grid, np.asarray(liver_center) + offset, (radius,) * 3) & (label == 1)
        hu[lesion] = HU["lesion"]
        label[lesion] = 4

    hu += rng.normal(0.0, noise_hu, size=shape).astype(np.float32)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) / 2.0 * s for n, s in zip(shape, spacing, strict=True)]
    return hu, label, affine


def write_dataset(out_dir: str | Path, spec: PhantomSpec = PhantomSpec()) -> Path:
    """Write ``spec.cases`` phantom cases to ``out_dir`` in MSD layout; returns ``dataset.json``'s path.

    Deterministic for ``spec``: the same spec writes the same voxels. ``dataset.json`` is written
    last (atomically), so its presence marks a complete dataset.
    """
    from rich.progress import track

    from ctbench.atomic import atomic_write_json

    out = Path(out_dir)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    training = []
    for i in track(range(spec.cases), description=f"Writing CT phantom ({spec.cases} cases)", transient=True):
        rng = np.random.default_rng([spec.seed, i])
        spacing = tuple(float(np.round(rng.uniform(*spec.voxel_mm), 3)) for _ in range(3))
        hu, label, affine = make_case(rng, spacing, spec.noise_hu)
        case = f"phantom_{i:03d}"
        write_case_files(out, case, hu, label, affine, lps=bool(i % 2))
        training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
    atomic_write_json(out / "dataset.json", phantom_manifest(
        "ctbench-phantom", "Synthetic abdominal CT phantom (HU) with liver, spleen, kidney and small liver lesions",
        "ctbench synth", training, {"cases": spec.cases, "seed": spec.seed, "voxel_mm": list(spec.voxel_mm),
                                    "noise_hu": spec.noise_hu}))
    return out / "dataset.json"


def ensure_dataset(root: str | Path, spec: PhantomSpec) -> Path:
    """Generate the phantom in ``root`` unless a complete one with the same spec is already there."""
    root = Path(root)
    manifest = root / "dataset.json"
    if manifest.exists():
        stored = json.loads(manifest.read_text()).get("ctbench_spec", {})
        wanted = {"cases": spec.cases, "seed": spec.seed, "voxel_mm": list(spec.voxel_mm), "noise_hu": spec.noise_hu}
        if stored == wanted:
            return manifest
    return write_dataset(root, spec)
