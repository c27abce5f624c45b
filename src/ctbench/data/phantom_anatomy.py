"""Anatomy of the CT-realistic phantom: organ templates as signed distances, warped smoothly per case.

Every structure is an implicit surface: a function of world coordinates (mm, RAS+: x towards the
patient's Right, y Anterior, z Superior) that is negative inside and roughly the distance to the
surface in mm near it. Templates are not ellipsoids: the liver is a smooth union of a right and a
left lobe (Quilez's polynomial smooth minimum), kidneys are ellipsoids with a hilum notch (bean),
the spleen is an ellipsoid minus an offset one (crescent). Each case warps the whole abdomen with a
smooth random displacement field (a few low-frequency Fourier modes, as in elastic augmentation) and
scales, rotates and moves each organ, so organs touch and press into each other as in patients.

Painting with partial volume: a structure's voxel occupancy is ``clip(0.5 - sdf / h, 0, 1)`` (``h``
the voxel size), the anti-aliased edge that :func:`Canvas.paint` blends into the image; the label is
the voxels at least half inside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Field of view in mm (x, y, z): an abdomen from the lung bases to below the kidneys.
FOV_MM = (340.0, 260.0, 200.0)

Coords = tuple[np.ndarray, np.ndarray, np.ndarray]
Box = tuple[slice, slice, slice]
Sdf = Callable[[Coords], np.ndarray]
#: HU inside a structure as a function of the box, the signed distance there and the warped coordinates.
Fill = Callable[[Box, np.ndarray, Coords], np.ndarray]


# ------------------------------------------------------------------------------------------ primitives


def ellipsoid(center: Sequence[float], axes: Sequence[float], angle: float = 0.0) -> Sdf:
    """Approximate signed distance (mm) to an ellipsoid rotated by ``angle`` (radians) about z."""
    cos, sin = np.cos(angle), np.sin(angle)
    scale = float(min(axes))

    def sdf(p: Coords) -> np.ndarray:
        x, y, z = (q - c for q, c in zip(p, center, strict=True))
        xr, yr = cos * x + sin * y, -sin * x + cos * y
        return (np.sqrt((xr / axes[0]) ** 2 + (yr / axes[1]) ** 2 + (z / axes[2]) ** 2) - 1.0) * scale
    return sdf


def superellipse_prism(axes: Sequence[float], power: float, center: Sequence[float] = (0.0, 0.0)) -> Sdf:
    """A body cross-section (``|x/a|^p + |y/b|^p <= 1``) extruded along z; distance in mm, approximate."""
    scale = float(min(axes))

    def sdf(p: Coords) -> np.ndarray:
        u = np.abs((p[0] - center[0]) / axes[0]) ** power + np.abs((p[1] - center[1]) / axes[1]) ** power
        return (u ** (1.0 / power) - 1.0) * scale + 0.0 * p[2]
    return sdf


def tube(start: Sequence[float], end: Sequence[float], radius: float) -> Sdf:
    """Signed distance to a capsule (a vessel segment) from ``start`` to ``end`` with ``radius`` mm."""
    a, b = np.asarray(start, float), np.asarray(end, float)
    axis = b - a
    length2 = float(axis @ axis)

    def sdf(p: Coords) -> np.ndarray:
        d = [q - s for q, s in zip(p, a, strict=True)]
        t = np.clip((d[0] * axis[0] + d[1] * axis[1] + d[2] * axis[2]) / length2, 0.0, 1.0)
        return np.sqrt(sum((di - t * ai) ** 2 for di, ai in zip(d, axis, strict=True))) - radius
    return sdf


def around(center: Sequence[float], axes: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """A world box that holds an ellipsoid of ``axes`` (mm) around ``center`` after any warp of this module."""
    margin = 1.3 * max(axes) + 25.0
    return np.subtract(center, margin), np.add(center, margin)


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two distances (Quilez 2013): a blended union with a fillet of ``k`` mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


# ------------------------------------------------------------------------------------------- the case


@dataclass
class Grid:
    """A case's RAS voxel grid: per-axis world coordinates (mm) of voxel centres and the spacing."""

    axes: tuple[np.ndarray, np.ndarray, np.ndarray]
    spacing: tuple[float, float, float]

    @classmethod
    def centred(cls, spacing: Sequence[float], fov_mm: Sequence[float] = FOV_MM) -> Grid:
        shape = [int(round(f / s)) for f, s in zip(fov_mm, spacing, strict=True)]
        axes = tuple((np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing, strict=True))
        return cls(axes=axes, spacing=tuple(float(s) for s in spacing))  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(len(a) for a in self.axes)  # type: ignore[return-value]

    def affine(self) -> np.ndarray:
        """4x4 RAS affine: diagonal spacing, origin at the first voxel centre."""
        affine = np.diag([*self.spacing, 1.0])
        affine[:3, 3] = [a[0] for a in self.axes]
        return affine

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> Box:
        """Index slices of the voxels whose centres lie in the world box ``[lo, hi]`` (mm)."""
        return tuple(slice(int(np.searchsorted(a, low)), int(np.searchsorted(a, high, side="right")))
                     for a, low, high in zip(self.axes, lo, hi, strict=True))  # type: ignore[return-value]


class Warp:
    """Smooth random displacement (mm): per axis, a sum of separable low-frequency sine products."""

    def __init__(self, rng: np.random.Generator, amplitude_mm: float, wavelength_mm: tuple[float, float],
                 modes: int = 3) -> None:
        self.terms = [[(rng.normal(0.0, amplitude_mm / np.sqrt(modes)), 2 * np.pi / rng.uniform(*wavelength_mm, size=3),
                        rng.uniform(0, 2 * np.pi, 3)) for _ in range(modes)] for _ in range(3)]

    def __call__(self, axes: Sequence[np.ndarray]) -> Coords:
        """Warped coordinates (full arrays, float32) of the grid spanned by the 1-D world ``axes``."""
        x, y, z = (np.asarray(a, dtype=np.float32) for a in axes)
        out = []
        for q, axis_terms in zip((x[:, None, None], y[None, :, None], z[None, None, :]), self.terms, strict=True):
            waves = [[amp * np.sin(f[0] * x + ph[0]) for amp, f, ph in axis_terms],
                     [np.sin(f[1] * y + ph[1]) for _, f, ph in axis_terms],
                     [np.sin(f[2] * z + ph[2]) for _, f, ph in axis_terms]]
            out.append(q + np.einsum("ki,kj,kl->ijl", *(np.asarray(w, dtype=np.float32) for w in waves)))
        return tuple(out)  # type: ignore[return-value]


class Canvas:
    """The HU image, the label map and a tissue map (every structure's id) being painted on one grid."""

    def __init__(self, grid: Grid, warp: Warp, background_hu: float) -> None:
        self.grid = grid
        self.warped = warp(grid.axes)
        self.hu = np.full(grid.shape, background_hu, dtype=np.float32)
        self.label = np.zeros(grid.shape, dtype=np.uint8)
        self.tissue = np.zeros(grid.shape, dtype=np.uint8)
        self.h = float(np.mean(grid.spacing))

    def coords(self, box: Box) -> Coords:
        """Warped world coordinates of the voxels in ``box``."""
        return tuple(q[box] for q in self.warped)  # type: ignore[return-value]

    def paint(self, sdf: Sdf, lo: Sequence[float], hi: Sequence[float], value: float | Fill,
              tissue: int, label: int | None = None, within: np.ndarray | None = None) -> np.ndarray:
        """Blend ``value`` (HU, or a :data:`Fill`) into the world box ``[lo, hi]`` where ``sdf < 0``.

        ``label`` (None: keep the labels below) is set where the structure covers at least half a
        voxel; ``within`` (a full-size boolean mask) restricts it, e.g. lesions to the liver. Returns the
        full-size mask of the voxels it now owns.
        """
        box = self.grid.box(lo, hi)
        owned = np.zeros(self.grid.shape, dtype=bool)
        if any(s.stop <= s.start for s in box):
            return owned
        p = self.coords(box)
        distance = sdf(p)
        occupancy = np.clip(0.5 - distance / self.h, 0.0, 1.0).astype(np.float32)
        if within is not None:
            occupancy *= within[box]
        fill = value(box, distance, p) if callable(value) else np.float32(value)
        region = self.hu[box]
        region += occupancy * (fill - region)
        inside = occupancy >= 0.5
        self.tissue[box][inside] = tissue
        if label is not None:
            self.label[box][inside] = label
        owned[box] = inside
        return owned


# ----------------------------------------------------------------------------------------- the abdomen

#: How liver lesions are placed (``dataset.phantom.lesion_layout``): apart, or in touching clusters.
LESION_LAYOUTS = ("separate", "touching")
#: Touching clusters: equivalent diameters (mm, log-uniform), 4-12 pixels at the survey study's 2 mm.
TOUCHING_DIAMETER_MM = (8.0, 24.0)
#: Neighbours in a cluster are drawn overlapping by this much (mm) along their line of centres, so they
#: touch under any warp; the label then keeps one voxel of liver between them (``_paint_touching_lesions``).
TOUCHING_OVERLAP_MM = 1.0
#: Ids of the tissue map (``Canvas.tissue``), for calibration checks and figures.
TISSUES = ("outside", "fat", "muscle", "visceral", "lung", "heart", "vertebra", "rib", "cord", "liver", "spleen",
           "kidney", "aorta", "ivc", "portal_vein", "stomach", "lesion", "liver_vessel")
TID = {name: i for i, name in enumerate(TISSUES)}
#: Bone HU falls from the cortex to the cancellous core over this depth (mm).
CORTEX_MM = 1.5
#: Mean and sd over a bone's voxels of the cortex weight ``exp(-depth / CORTEX_MM)``, measured on this
#: generator at the files' typical 1.3 x 1.3 x 3 mm voxels; they turn a target mean and sd into core,
#: cortex and texture.
CORTEX_WEIGHT = {"vertebra": (0.265, 0.178), "rib": (0.43, 0.10)}


def paint_abdomen(rng: np.random.Generator, canvas: Canvas, targets: dict[str, tuple[float, float]],
                  noise_sd: float, texture: np.ndarray, lesion_layout: str = "separate") -> dict[str, Any]:
    """Paint one patient's abdomen onto ``canvas``; returns what was drawn (lesions, the streak source).

    ``lesion_layout`` (:data:`LESION_LAYOUTS`): ``separate`` lesions anywhere in the liver, or ``touching``
    clusters (:func:`_paint_touching_lesions`); the organs are the same draws either way.

    ``targets`` holds the interior (mean, sd) HU per tissue; each tissue gets the mean (plus a per-patient
    shift of 3 HU sd) and ``texture`` scaled so that texture and image noise (``noise_sd``) add up to
    the target spread. Bones fall from a cortex to a cancellous core at a third of the target mean
    (:data:`CORTEX_WEIGHT`); the texture supplies the spread the cortex does not.
    """
    jit = lambda s: float(rng.uniform(-s, s))  # noqa: E731
    grow = lambda: float(rng.uniform(0.88, 1.12))  # noqa: E731
    fx, fy, fz = (f / 2 for f in FOV_MM)
    everywhere = ((-fx, -fy, -fz), (fx, fy, fz))

    def soft(name: str) -> Fill:
        mean, sd = targets[name]
        mean += rng.normal(0.0, 3.0)
        tex_sd = np.sqrt(max(sd ** 2 - noise_sd ** 2, 0.0))
        return lambda box, d, p: mean + tex_sd * texture[box]

    def bone(name: str) -> Fill:
        mean, sd = targets[name]
        weight_mean, weight_sd = CORTEX_WEIGHT[name]
        core = mean / 3.0
        step = (mean - core) / weight_mean
        tex_sd = np.sqrt(max(sd ** 2 - (step * weight_sd) ** 2, 0.0))
        return lambda box, d, p: core + step * np.exp(np.minimum(d, 0.0) / CORTEX_MM) + tex_sd * texture[box]

    # body wall: subcutaneous fat, muscle, then the abdominal cavity (fat, bowel and its gas)
    a, b, power = 150.0 * grow(), 110.0 * grow(), rng.uniform(2.2, 2.8)
    fat_mm, muscle_mm = rng.uniform(8.0, 28.0), rng.uniform(8.0, 14.0)
    body = superellipse_prism((a, b), power)
    wall = superellipse_prism((a - fat_mm, b - fat_mm), power)
    cavity = superellipse_prism((a - fat_mm - muscle_mm, b - fat_mm - muscle_mm), power)
    canvas.paint(body, *everywhere, soft("fat"), TID["fat"])
    canvas.paint(wall, *everywhere, soft("muscle"), TID["muscle"])
    fat_mean, bowel_mean = targets["fat"][0], 30.0  # bowel wall and content: not calibrated (no bowel label)

    def visceral(box: Box, d: np.ndarray, p: Coords) -> np.ndarray:
        mix = texture[box]
        tissue = fat_mean + (bowel_mean - fat_mean) / (1.0 + np.exp(-3.0 * (mix + 0.3)))
        return np.where(mix > 2.2, -850.0, tissue)  # gas in the bowel
    canvas.paint(cavity, *everywhere, visceral, TID["visceral"])

    # lungs above the diaphragm's two domes (the right one higher), the mediastinum between them
    dome_right = 45.0 + jit(12)
    dome_left = dome_right - rng.uniform(5.0, 20.0)

    def diaphragm(p: Coords) -> np.ndarray:
        top = dome_left + (dome_right - dome_left) / (1.0 + np.exp(-p[0] / 20.0))
        return top - 35.0 * ((np.abs(p[0]) - 75.0) / 75.0) ** 2 - 25.0 * ((p[1] + 10.0) / 100.0) ** 2

    lung = lambda p: np.maximum(np.maximum(cavity(p) + 2.0, diaphragm(p) - p[2]), 35.0 - np.abs(p[0]))  # noqa: E731
    canvas.paint(lung, (-fx, -fy, dome_left - 80.0), (fx, fy, fz), soft("lung"), TID["lung"])
    heart_c = (-15.0 + jit(8), 35.0 + jit(8), dome_left + 45.0)
    canvas.paint(ellipsoid(heart_c, (60.0, 50.0, 45.0)), *around(heart_c, (60.0, 50.0, 45.0)),
                 soft("ivc"), TID["heart"])

    # spine: vertebral bodies between discs, arch, spinous and transverse processes, cord; back muscles
    ys = -b + rng.uniform(65.0, 80.0)
    for side in (+1, -1):
        canvas.paint(ellipsoid((side * 33.0, ys - 48.0, 0.0), (24.0 * grow(), 20.0 * grow(), 1e4)),
                     (side * 33 - 40, ys - 80, -fz), (side * 33 + 40, ys - 15, fz), soft("muscle"), TID["muscle"])
        canvas.paint(ellipsoid((side * 42.0, ys + 8.0, -fz), (17.0 * grow(), 15.0 * grow(), 120.0)),
                     (side * 42 - 30, ys - 20, -fz), (side * 42 + 30, ys + 35, fz), soft("muscle"), TID["muscle"])
    disc_phase = jit(16)
    vertebral_body = superellipse_prism((21.0 * grow(), 17.0 * grow()), 2.0, (0.0, ys))
    disc_gap = lambda p: 3.0 - np.abs((p[2] - disc_phase) % 32.0 - 16.0) + 0.0 * p[0]  # noqa: E731
    spine_box = ((-60, ys - 75, -fz), (60, ys + 25, fz))
    canvas.paint(vertebral_body, *spine_box, soft("muscle"), TID["muscle"])  # the discs
    canal = (0.0, ys - 28.0)
    arch = lambda p: np.maximum(superellipse_prism((16.0, 14.0), 2.0, canal)(p),  # noqa: E731
                                -superellipse_prism((9.0, 8.0), 2.0, canal)(p))
    mid_level = lambda p: 8.0 - np.abs((p[2] - disc_phase) % 32.0 - 16.0)  # noqa: E731  processes: mid-vertebra
    spinous = lambda p: np.maximum(np.maximum(np.abs(p[0]) - 3.5, np.abs(p[1] - (ys - 50.0)) - 10.0),  # noqa: E731
                                   mid_level(p))
    transverse = lambda p: np.maximum(np.maximum(np.abs(p[0]) - 32.0, np.abs(p[1] - (ys - 26.0)) - 4.0),  # noqa: E731
                                      mid_level(p))
    vertebra = lambda p: np.minimum(np.maximum(vertebral_body(p), disc_gap(p)),  # noqa: E731
                                    np.minimum(arch(p), np.minimum(spinous(p), transverse(p))))
    canvas.paint(vertebra, *spine_box, bone("vertebra"), TID["vertebra"])
    canvas.paint(superellipse_prism((8.0, 7.0), 2.0, canal), *spine_box, soft("muscle"), TID["cord"])

    # ribs: arcs in the body wall over the upper abdomen, descending from the spine towards the front
    ring_sdf = superellipse_prism(((a - fat_mm - 0.5 * muscle_mm) * 0.97, (b - fat_mm - 0.5 * muscle_mm) * 0.97), power)
    for k in range(7):
        z_rib = dome_right + 25.0 - 21.0 * k + jit(3)
        rib = lambda p, z_rib=z_rib: np.maximum(  # noqa: E731
            np.sqrt(ring_sdf(p) ** 2 + (0.5 * (p[2] - z_rib + 45.0 * np.abs(np.arctan2(p[0], -p[1])))) ** 2) - 3.0,
            p[1] - 0.3 * b)
        canvas.paint(rib, (-fx, -fy, z_rib - 110.0), (fx, fy, z_rib + 10), bone("rib"), TID["rib"])

    # organs: liver (two lobes) and spleen (crescent) under the domes, each leaving its kidney's fossa (the
    # kidney touches it in front, retroperitoneal fat lies behind), then vessels, kidneys, stomach
    below_dome = lambda sdf: (lambda p: np.maximum(np.maximum(sdf(p), cavity(p)), p[2] - diaphragm(p) + 4.0))  # noqa: E731
    lc = (65.0 + jit(6), 5.0 + jit(8), dome_right - 55.0 + jit(8))
    sc = (-85.0 + jit(8), -30.0 + jit(8), dome_left - 50.0 + jit(8))
    kidneys, fossae = [], []
    for side, top in ((+1, lc[2] - 65.0), (-1, sc[2] - 50.0)):
        kc = (side * (72.0 + jit(5)), ys + 5.0 + jit(5), top + jit(8))
        axes, angle = (30.0 * grow(), 24.0 * grow(), 55.0 * grow()), side * 0.35 + jit(0.15)
        bean = ellipsoid(kc, axes, angle)
        notch = ellipsoid((kc[0] - side * 28.0, kc[1] + 8.0, kc[2]), (16.0, 16.0, 22.0))
        kidneys.append((kc, axes, lambda p, bean=bean, notch=notch: np.maximum(bean(p), -notch(p))))
        fossae.append(ellipsoid((kc[0], kc[1] - 12.0, kc[2]), [a + 12.0 for a in axes], angle))
    right_lobe = ellipsoid(lc, (80.0 * grow(), 85.0 * grow(), 75.0 * grow()), jit(0.2))
    left_lobe = ellipsoid((lc[0] - 90.0 + jit(10), lc[1] + 30.0, lc[2] + 20.0), (60.0 * grow(), 40.0 * grow(),
                                                                                  30.0 * grow()), 0.3 + jit(0.2))
    liver = below_dome(lambda p: np.maximum(smooth_union(right_lobe(p), left_lobe(p), 25.0), -fossae[0](p)))
    liver_value = soft("liver")
    liver_mask = canvas.paint(liver, np.subtract(lc, (200, 130, 110)), np.add(lc, (120, 130, 110)), liver_value,
                              TID["liver"], label=1)
    spleen_axes, spleen_angle = (32.0 * grow(), 60.0 * grow(), 55.0 * grow()), -0.5 + jit(0.2)
    outer = ellipsoid(sc, spleen_axes, spleen_angle)
    inner = ellipsoid((sc[0] + 30.0, sc[1] + 15.0, sc[2]), (30.0, 50.0, 60.0), spleen_angle)
    canvas.paint(below_dome(lambda p: np.maximum(np.maximum(outer(p), -inner(p)), -fossae[1](p))),
                 *around(sc, spleen_axes), soft("spleen"), TID["spleen"], label=2)

    hilum = (lc[0] - 35.0 + jit(5), lc[1] - 15.0 + jit(5), lc[2] - 20.0 + jit(5))
    confluence = (jit(5), ys + 45.0, hilum[2] - 10.0)
    vein = soft("portal_vein")
    for _ in range(4):  # intrahepatic portal branches: part of the liver label, as in MSD and TotalSegmentator
        tip = np.asarray(lc) + rng.uniform(-45.0, 45.0, 3)
        canvas.paint(tube(hilum, tip, rng.uniform(2.0, 3.5)), np.minimum(hilum, tip) - 20,
                     np.maximum(hilum, tip) + 20, vein, TID["liver_vessel"], within=liver_mask)
    for start, end, radius in ((hilum, confluence, rng.uniform(6.0, 8.0)),
                               (confluence, (sc[0] + 25.0, sc[1] + 10.0, sc[2]), rng.uniform(4.0, 5.5))):
        canvas.paint(tube(start, end, radius), np.minimum(start, end) - 25, np.maximum(start, end) + 25, vein,
                     TID["portal_vein"], label=0)
    aorta_c = (-18.0 + jit(5), ys + 33.0)
    canvas.paint(superellipse_prism((11.5 + jit(1.5),) * 2, 2.0, aorta_c), (aorta_c[0] - 35, aorta_c[1] - 35, -fz),
                 (aorta_c[0] + 35, aorta_c[1] + 35, fz), soft("aorta"), TID["aorta"], label=0)
    ivc_c = (22.0 + jit(4), ys + 35.0)
    canvas.paint(superellipse_prism((15.0, 10.0), 2.0, ivc_c), (ivc_c[0] - 35, ivc_c[1] - 35, -fz),
                 (ivc_c[0] + 35, ivc_c[1] + 35, dome_right), soft("ivc"), TID["ivc"], label=0)
    kidney_value = soft("kidney")
    for kc, axes, kidney in kidneys:
        canvas.paint(kidney, *around(kc, axes), kidney_value, TID["kidney"], label=3)
    stomach_c = (-50.0 + jit(8), 35.0 + jit(8), dome_left - 45.0)
    stomach_axes = (38.0 * grow(), 30.0 * grow(), 35.0 * grow())

    def stomach_fill(box: Box, d: np.ndarray, p: Coords) -> np.ndarray:  # gas over fluid: the patient is supine
        return np.where(p[1] > stomach_c[1] + 12.0, targets["air"][0], 25.0 + 10.0 * texture[box])
    canvas.paint(below_dome(ellipsoid(stomach_c, stomach_axes)), *around(stomach_c, stomach_axes), stomach_fill,
                 TID["stomach"], label=0)

    paint_lesions = _paint_touching_lesions if lesion_layout == "touching" else _paint_lesions
    lesions = paint_lesions(rng, canvas, liver_value, texture)
    dense_point = (jit(8), ys - 10.0, float(rng.uniform(-fz, fz)))
    return {"lesions": lesions, "dense_point": dense_point}


def _paint_lesions(rng: np.random.Generator, canvas: Canvas, liver_value: Fill, texture: np.ndarray
                   ) -> list[dict[str, float]]:
    """0-5 liver lesions (none in a fifth of the livers), 3-30 mm (log-uniform), 10-50 HU hypo- or hyperdense."""
    from scipy import ndimage

    liver = canvas.label == 1
    count = 0 if rng.random() < 0.2 else int(rng.integers(1, 6))
    if count == 0 or not liver.any():
        return []
    depth = ndimage.distance_transform_edt(liver, sampling=canvas.grid.spacing)
    lesions = []
    for _ in range(count):
        diameter = float(np.exp(rng.uniform(np.log(3.0), np.log(30.0))))
        contrast = float((-1.0 if rng.random() < 0.7 else 1.0) * rng.uniform(10.0, 50.0))
        deep = np.argwhere(depth >= min(diameter / 2.0, depth.max() * 0.8))
        index = deep[rng.integers(len(deep))]
        center = [float(q[tuple(index)]) for q in canvas.warped]  # where the warp puts that voxel's anatomy
        axes = [diameter / 2.0 * rng.uniform(0.85, 1.15) for _ in range(3)]
        fill = lambda box, d, p, c=contrast: liver_value(box, d, p) + c  # noqa: E731
        owned = canvas.paint(ellipsoid(center, axes, rng.uniform(0, np.pi)), np.subtract(center, diameter),
                             np.add(center, diameter), fill, TID["lesion"], label=4, within=canvas.label == 1)
        lesions.append({"diameter_mm": float(2.0 * np.prod(axes) ** (1 / 3)), "contrast_hu": contrast,
                        "voxels": float(owned.sum())})
    return lesions


def _radius_along(axes: Sequence[float], angle: float, direction: np.ndarray) -> float:
    """Distance (mm) from the centre of :func:`ellipsoid` ``(axes, angle)`` to its surface along unit ``direction``."""
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = (cos * direction[0] + sin * direction[1], -sin * direction[0] + cos * direction[1], direction[2])
    return float(1.0 / np.sqrt(sum((u / a) ** 2 for u, a in zip(rotated, axes, strict=True))))


def _paint_touching_lesions(rng: np.random.Generator, canvas: Canvas, liver_value: Fill, texture: np.ndarray
                            ) -> list[dict[str, float]]:
    """1-2 clusters per liver of 2-3 lesions (:data:`TOUCHING_DIAMETER_MM`), one contrast per cluster (10-50 HU
    hypo- or hyperdense), each lesion touching the one before it in the axial plane.

    Why: the survey (4.1.2) says U-Net's distance-weighted loss separates objects that are close; that needs
    same-class instances that touch. A lesion is drawn overlapping its predecessor by :data:`TOUCHING_OVERLAP_MM`
    along a random in-plane direction (the third turns 60-120 degrees from the pair's line), then kept out of
    the full-connectivity neighbourhood of the lesions already painted: one voxel layer of liver separates the
    instances in the label map, as the U-Net paper's labels keep a border of background between touching cells
    (Ronneberger et al. 2015, Fig. 3), so the truth has one component per lesion and only a prediction of that
    border separates them. ``cluster`` in each record numbers the cluster.
    """
    from scipy import ndimage

    liver = canvas.label == 1
    if not liver.any():
        return []
    depth = ndimage.distance_transform_edt(liver, sampling=canvas.grid.spacing)
    neighbourhood = ndimage.generate_binary_structure(3, 3)
    lesions: list[dict[str, float]] = []
    for cluster in range(int(rng.integers(1, 3))):
        diameters = np.exp(rng.uniform(*np.log(TOUCHING_DIAMETER_MM), size=int(rng.integers(2, 4))))
        contrast = float((-1.0 if rng.random() < 0.7 else 1.0) * rng.uniform(10.0, 50.0))
        reach = diameters[0] / 2.0 + float(diameters[1:].sum())
        deep = np.argwhere(depth >= min(reach, depth.max() * 0.8))
        index = tuple(deep[rng.integers(len(deep))])
        center = np.array([float(q[index]) for q in canvas.warped])  # anatomy (warped) coordinates
        position = np.array([float(a[i]) for a, i in zip(canvas.grid.axes, index, strict=True)])  # grid coordinates
        heading = rng.uniform(0.0, 2.0 * np.pi)
        fill = lambda box, d, p, c=contrast: liver_value(box, d, p) + c  # noqa: E731
        previous: tuple[list[float], float] | None = None
        for k, diameter in enumerate(diameters):
            axes = [float(diameter) / 2.0 * rng.uniform(0.85, 1.15) for _ in range(3)]
            angle = float(rng.uniform(0, np.pi))
            if previous is not None:
                if k == 2:
                    heading += rng.choice([-1.0, 1.0]) * rng.uniform(np.pi / 3.0, 2.0 * np.pi / 3.0)
                direction = np.array([np.cos(heading), np.sin(heading), 0.0])
                step = _radius_along(*previous, direction) + _radius_along(axes, angle, direction) - TOUCHING_OVERLAP_MM
                center, position = center + step * direction, position + step * direction
            apart = (canvas.label == 1) & ~ndimage.binary_dilation(canvas.label == 4, neighbourhood)
            owned = canvas.paint(ellipsoid(center, axes, angle), *around(position, axes), fill, TID["lesion"],
                                 label=4, within=apart)
            lesions.append({"diameter_mm": float(2.0 * np.prod(axes) ** (1 / 3)), "contrast_hu": contrast,
                            "voxels": float(owned.sum()), "cluster": cluster})
            previous = (axes, angle)
    return lesions
