"""CT-realistic abdominal phantom (``dataset=phantom``): two contrast phases, calibrated on real CT.

Why: the simple phantom (:mod:`ctbench.data.synthetic`) separates organs by intensity alone, so every
model looks alike on it. Here the Hounsfield units of every tissue are the interior means and spreads
measured on the real CT in ``shared/data/real/`` (``docs/phantom.md``: the table and the commands):
organs lie within 10-30 HU of each other without contrast and separate only partly in the portal-venous
phase. The anatomy (:mod:`ctbench.data.phantom_anatomy`) has fat, air, lungs, muscle, spine and ribs,
aorta, IVC and portal/splenic veins, a lobed liver, bean-shaped kidneys and a crescent spleen under a
smooth random warp; then the image goes through what a scanner does to it: blur by the point-spread
function and slice profile (partial volume at every boundary), spatially correlated band-pass noise
(the texture of filtered back-projection), and in some cases streaks from a dense object.

Labels as in the simple phantom: 1 liver, 2 spleen, 3 kidney, 4 liver lesion (3-30 mm, 0-5 per liver,
10-50 HU hypo- or hyperdense). Files in MSD layout, half of them LPS-stored, with varied in-plane spacing
and slice thickness.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ctbench.data import phantom_anatomy as anat
from ctbench.data.phantom_files import phantom_manifest, write_case_files

PHASES = ("non_contrast", "portal_venous")
#: Raise when the same spec would write other voxels, so that stored datasets are generated again.
GENERATOR_VERSION = 2

#: Interior HU (mean, sd) per tissue and phase, measured on the real files (docs/phantom.md). Soft
#: tissues: voxels of the TotalSegmentator label eroded by one voxel; bones: the whole label; fat: unlabelled
#: voxels in [-190, -30] HU; aorta (portal-venous): median and IQR/1.349 (5 % of its voxels are calcified
#: plaque above 379 HU). Not in the contrast series and so assumed: kidney (a typical nephrographic value)
#: and lung (the non-contrast value; air does not enhance).
TARGETS: dict[str, dict[str, tuple[float, float]]] = {
    "non_contrast": {
        "air": (-983.0, 26.0), "fat": (-92.4, 26.7), "muscle": (23.9, 27.8), "lung": (-787.8, 67.6),
        "liver": (46.4, 12.9), "spleen": (34.9, 12.3), "kidney": (17.0, 34.4), "aorta": (43.5, 14.1),
        "ivc": (42.3, 12.6), "portal_vein": (41.0, 11.6), "vertebra": (189.4, 153.3), "rib": (222.9, 102.7),
    },
    "portal_venous": {
        "air": (-983.0, 26.0), "fat": (-79.3, 28.7), "muscle": (24.9, 30.4), "lung": (-787.8, 67.6),
        "liver": (90.6, 19.2), "spleen": (81.3, 17.5), "kidney": (160.0, 25.0), "aorta": (153.0, 17.8),
        "ivc": (95.8, 14.3), "portal_vein": (136.6, 19.1), "vertebra": (274.3, 187.3), "rib": (274.9, 189.9),
    },
}
#: Standard deviation (HU) of the image noise per phase, below the smallest measured organ spread.
NOISE_HU = {"non_contrast": 11.0, "portal_venous": 14.0}
#: Noise correlation length in-plane (mm): the measured lag-1 mm correlation of the residual is 0.59.
NOISE_CORRELATION_MM = 0.7


@dataclass(frozen=True)
class PhantomSpec:
    """What varies between phantom datasets: cases, seed, in-plane pixel and slice-thickness ranges (mm), and
    ``lesion_layout`` (``separate``, or ``touching`` clusters: :data:`phantom_anatomy.LESION_LAYOUTS`)."""

    cases: int = 60
    seed: int = 0
    pixel_mm: tuple[float, float] = (1.0, 1.6)
    slice_mm: tuple[float, float] = (1.5, 5.0)
    phases: tuple[str, ...] = PHASES
    streak_probability: float = 0.25
    lesion_layout: str = "separate"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PhantomSpec:
        """The spec of a ``dataset.phantom`` config block; unknown keys are a user error."""
        from ctbench.errors import CTBenchError

        names = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise CTBenchError(f"dataset.phantom has unknown key(s) {', '.join(unknown)} for the CT phantom: use "
                               f"{', '.join(sorted(names))} (debug=fast pins the simple phantom: use "
                               "dataset=phantom_tiny instead)")
        bad = sorted(set(config.get("phases", PHASES)) - set(PHASES))
        if bad:
            raise CTBenchError(f"dataset.phantom.phases has unknown phase(s) {', '.join(bad)}: use {', '.join(PHASES)}")
        layout = config.get("lesion_layout", "separate")
        if layout not in anat.LESION_LAYOUTS:
            raise CTBenchError(f"dataset.phantom.lesion_layout {layout!r} is not a layout: use "
                               f"{' or '.join(anat.LESION_LAYOUTS)}")
        values = {k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for k, v in config.items()}
        return cls(**values)

    def manifest(self) -> dict[str, Any]:
        """What ``dataset.json`` records; a stored dataset is reused only when this is equal. The default
        ``lesion_layout`` is left out, so the datasets written before it existed are still reused."""
        spec = asdict(self)
        if spec["lesion_layout"] == "separate":
            del spec["lesion_layout"]
        return {"generator": "phantom", "version": GENERATOR_VERSION,
                **{k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()}}


@dataclass
class PhantomCase:
    """One case on its RAS grid: HU image, label map, tissue map (``phantom_anatomy.TISSUES``), affine, draws."""

    hu: np.ndarray
    label: np.ndarray
    tissue: np.ndarray
    affine: np.ndarray
    info: dict[str, Any]


def _unit_field(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float],
                sigma_mm: Sequence[float]) -> np.ndarray:
    """White noise low-passed by a Gaussian of ``sigma_mm``, scaled to unit standard deviation (float32)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32),
                                    [s / d for s, d in zip(sigma_mm, spacing, strict=True)])
    return field / max(float(field.std()), 1e-6)


def ct_noise(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], sd: float) -> np.ndarray:
    """Band-pass correlated noise with standard deviation ``sd``: mostly in-plane correlation, mid-frequency peak.

    A fine Gaussian-correlated field minus half of a coarser one, so the noise power spectrum peaks at
    mid frequencies as after filtered back-projection's ramp filter (Hanson 1979), not at zero.
    """
    fine = _unit_field(rng, shape, spacing, (NOISE_CORRELATION_MM, NOISE_CORRELATION_MM, 0.3 * spacing[2]))
    coarse = ndimage.gaussian_filter(fine, [3.0 * NOISE_CORRELATION_MM / spacing[0], 3.0 * NOISE_CORRELATION_MM
                                            / spacing[1], 0.0])
    band = fine - 0.5 * coarse
    return band * np.float32(sd / max(float(band.std()), 1e-6))


def streaks(rng: np.random.Generator, grid: anat.Grid, source: Sequence[float]) -> np.ndarray:
    """Streak artifact around a dense point: alternating bright and dark lines through it, decaying with distance.

    Photon starvation and beam hardening behind metal or dense bone (Barrett & Keat 2004) appear as
    lines radiating from the object in the slices that contain it.
    """
    x, y, z = (a - s for a, s in zip(grid.axes, source, strict=True))
    width = max(0.8, 0.6 * min(grid.spacing[:2]))
    plane = np.zeros((len(x), len(y)), dtype=np.float32)
    radius = np.sqrt(x[:, None] ** 2 + y[None, :] ** 2)
    for angle in rng.uniform(0.0, np.pi, size=int(rng.integers(4, 10))):
        distance = np.abs(-np.sin(angle) * x[:, None] + np.cos(angle) * y[None, :])
        plane += rng.choice([-1.0, 1.0]) * rng.uniform(40.0, 150.0) * np.exp(-0.5 * (distance / width) ** 2)
    plane *= np.exp(-radius / 150.0)
    reach = rng.uniform(4.0, 15.0)
    return plane[:, :, None] * np.exp(-0.5 * (z / reach) ** 2)[None, None, :].astype(np.float32)


def make_case(rng: np.random.Generator, spacing: Sequence[float], phase: str = "portal_venous",
              streak_probability: float = 0.25, lesion_layout: str = "separate") -> PhantomCase:
    """Draw one phantom in ``phase`` on a RAS grid of ``spacing`` (mm); see the module docstring."""
    grid = anat.Grid.centred(spacing)
    air_mean, air_sd = TARGETS[phase]["air"]
    canvas = anat.Canvas(grid, anat.Warp(rng, amplitude_mm=6.0, wavelength_mm=(150.0, 400.0)), air_mean)
    texture = _unit_field(rng, grid.shape, spacing, (3.0, 3.0, 3.0))
    canvas.hu += np.float32(np.sqrt(air_sd ** 2 - NOISE_HU[phase] ** 2)) * texture
    info = anat.paint_abdomen(rng, canvas, TARGETS[phase], NOISE_HU[phase], texture, lesion_layout)
    hu = ndimage.gaussian_filter(canvas.hu, 0.42)  # point-spread function and slice profile, in voxels
    hu += ct_noise(rng, grid.shape, spacing, NOISE_HU[phase])
    info["streaks"] = bool(rng.random() < streak_probability)
    if info["streaks"]:
        hu += streaks(rng, grid, info["dense_point"]) * (canvas.tissue > 0)
    hu = np.clip(hu, -1024.0, 3071.0)
    info.update(phase=phase, spacing=[float(s) for s in spacing])
    return PhantomCase(hu=hu, label=canvas.label, tissue=canvas.tissue, affine=grid.affine(), info=info)


def draw_case(spec: PhantomSpec, index: int) -> PhantomCase:
    """Case ``index`` of the dataset ``spec`` (RAS, before storage): its own seed, spacing and phase."""
    rng = np.random.default_rng([spec.seed, index])
    pixel = float(np.round(rng.uniform(*spec.pixel_mm), 3))
    spacing = (pixel, pixel, float(np.round(rng.uniform(*spec.slice_mm), 2)))
    return make_case(rng, spacing, spec.phases[(index // 2) % len(spec.phases)], spec.streak_probability,
                     spec.lesion_layout)


def write_dataset(out_dir: str | Path, spec: PhantomSpec = PhantomSpec()) -> Path:
    """Write ``spec.cases`` phantom cases to ``out_dir`` in MSD layout; returns ``dataset.json``'s path.

    Deterministic for ``spec``. Case ``i`` is in phase ``spec.phases[(i // 2) % len(phases)]`` and stored
    LPS when ``i`` is odd, so both phases come in both orientations. ``dataset.json`` is written last.
    """
    from rich.progress import track

    from ctbench.atomic import atomic_write_json

    out = Path(out_dir)
    training = []
    for i in track(range(spec.cases), description=f"Writing CT phantom ({spec.cases} cases)", transient=True):
        case = draw_case(spec, i)
        phase = case.info["phase"]
        orientation = "LPS" if i % 2 else "RAS"
        name = f"phantom_{i:03d}"
        write_case_files(out, name, case.hu, case.label, case.affine, lps=orientation == "LPS")
        training.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz",
                         "phase": phase, "orientation": orientation, "spacing": case.info["spacing"],
                         "lesions": [{k: round(v, 1) for k, v in les.items()} for les in case.info["lesions"]],
                         "streaks": case.info["streaks"]})
    atomic_write_json(out / "dataset.json", phantom_manifest(
        "ctbench-ct-phantom", "CT-realistic abdominal phantom (HU, non-contrast and portal-venous) with liver, "
        "spleen, kidney and liver lesions", "ctbench synth --kind phantom (docs/phantom.md)", training,
        spec.manifest()))
    return out / "dataset.json"


def ensure_dataset(root: str | Path, spec: PhantomSpec) -> Path:
    """Generate the phantom in ``root`` unless a complete one with the same spec is already there."""
    manifest = Path(root) / "dataset.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("ctbench_spec") == spec.manifest():
        return manifest
    return write_dataset(root, spec)
