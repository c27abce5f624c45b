"""Area-weighted surface distances (ctbench.surface_distance): hand-computed cases, DeepMind's
``surface-distance`` on the same masks, and the mesh-based reference ``pymeshmetrics`` (MeshMetrics,
Podobnik & Vrtovec) on 31 anisotropic 2D and 3D cases (slow tier)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from ctbench.metrics import case_metrics
from ctbench.surface_distance import (
    average_symmetric,
    boundary_elements,
    hausdorff,
    surface_dice,
    surface_distances,
)


def weighted_quantile(values, weights, q):
    """The smallest value whose cumulative weight reaches q % of the total (sorted values)."""
    cum = np.cumsum(weights) / np.sum(weights)
    return values[min(int(np.searchsorted(cum, q / 100)), len(values) - 1)]


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 1.1, 5.0)])
def test_single_voxel_is_an_octahedron(spacing):
    # a lone voxel: 8 corner blocks, each one marching-cubes triangle joining 3 face centres, together the
    # octahedron with semi-axes a/2, b/2, c/2, area sqrt((bc)^2 + (ac)^2 + (ab)^2)
    a, b, c = spacing
    mask = np.zeros((3, 3, 3), bool)
    mask[1, 1, 1] = True
    position, area = boundary_elements(mask, spacing)
    for axis, s in enumerate(spacing):  # the elements sit at the voxel's corners, 0.5 s and 1.5 s (centre: 1 s)
        assert np.unique(position[:, axis]) == pytest.approx([0.5 * s, 1.5 * s])
    assert len(area) == 8 and area.sum() == pytest.approx(math.sqrt((b * c) ** 2 + (a * c) ** 2 + (a * b) ** 2))


def test_2d_island_weighted_by_contour_length():
    """Truth: a 4 x 4-pixel square. Prediction: the square plus a one-pixel island in its rows, 6 pixels to
    the right. Contour elements (2 x 2 blocks): a square corner and each island block is a diagonal cut of
    length g = sqrt(s0^2 + s1^2) / 2; a side block is one spacing long. Every square element of the
    prediction lies on the truth's (distance 0); the island's blocks at columns 10 and 11 are 6 and
    7 columns from the square's right side (column 4 of blocks)."""
    s0, s1 = 1.0, 0.6
    t = np.zeros((8, 14), np.uint8)
    t[2:6, 0:4] = 1
    p = t.copy()
    p[3, 10] = 1
    g = math.hypot(s0, s1) / 2
    square = [g] * 4 + [s1] * 6 + [s0] * 6
    island_d, island_w = [6 * s1, 6 * s1, 7 * s1, 7 * s1], [g] * 4
    d = np.array([0.0] * len(square) + island_d)
    w = np.array(square + island_w)
    (row,) = case_metrics(p, t, (s0, s1), {1: "organ"}, tolerance_mm=1.0)
    # 95 % of the prediction's contour is reached only inside the island: 84 % is on the square
    assert row["hd95"] == pytest.approx(weighted_quantile(d, w, 95)) == pytest.approx(7 * s1)
    assert row["assd"] == pytest.approx(float(d @ w) / (2 * sum(square) + 4 * g))
    assert row["nsd"] == pytest.approx(2 * sum(square) / (2 * sum(square) + 4 * g))
    assert row["nsd_tolerance_mm"] == 1.0


def test_island_of_thick_slices_counts_by_area():
    """Issue 22's case: a 4 x 4 x 3-voxel island at 5 mm slices beside a flat organ (30 x 30 x 3 voxels of
    0.8 x 0.8 x 5 mm). Its boundary elements are under 5 % of the prediction's (by voxel count HD95 was
    0), its area is not: HD95 is the island's distance to the organ, at least the 15 columns between."""
    t = np.zeros((40, 60, 6), np.uint8)
    t[5:35, 5:35, 1:4] = 1
    p = t.copy()
    p[18:22, 50:54, 1:4] = 1
    spacing = (0.8, 0.8, 5.0)
    (row,) = case_metrics(p, t, spacing, {1: "organ"})
    assert row["hd95"] >= 15 * 0.8
    sd = surface_distances(p == 1, t == 1, spacing)
    island = sd.pred_to_truth > 0
    assert island.sum() / island.size < 0.05 < sd.pred_areas[island].sum() / sd.pred_areas.sum()


@pytest.mark.parametrize("ndim", [2, 3])
def test_equals_deepmind_surface_distance(ndim):
    """HD95 and NSD are DeepMind's; ASSD pools both boundaries' areas (DeepMind returns the two directed
    means, whose area-weighted combination it is)."""
    dm = pytest.importorskip("surface_distance")
    rng = np.random.default_rng(ndim)
    shape = (30, 26) if ndim == 2 else (18, 16, 10)
    spacing = (0.7, 2.5) if ndim == 2 else (0.9, 1.1, 2.5)
    t = ndimage.gaussian_filter(rng.random(shape), 2) > 0.5
    p = ndimage.binary_dilation(np.roll(t, 1, axis=0))
    p[tuple(rng.integers(0, s) for s in shape)] = True
    sd = surface_distances(p, t, spacing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = dm.compute_surface_distances(t, p, spacing)
    assert hausdorff(sd, 95) == pytest.approx(dm.compute_robust_hausdorff(ref, 95), rel=1e-9)
    assert hausdorff(sd, 100) == pytest.approx(dm.compute_robust_hausdorff(ref, 100), rel=1e-9)
    assert surface_dice(sd, 2.5) == pytest.approx(dm.compute_surface_dice_at_tolerance(ref, 2.5), rel=1e-7)
    d_t, d_p = ref["distances_gt_to_pred"], ref["distances_pred_to_gt"]
    a_t, a_p = ref["surfel_areas_gt"], ref["surfel_areas_pred"]
    assert average_symmetric(sd) == pytest.approx((d_t @ a_t + d_p @ a_p) / (a_t.sum() + a_p.sum()), rel=1e-7)


# --------------------------------------------------------------------------------------------------
# against the mesh-based reference (slow tier)
# --------------------------------------------------------------------------------------------------


def ellipsoid(shape, spacing, radii_mm, centre=None):
    """Binary ellipsoid with semi-axes in mm on a grid of ``spacing``."""
    centre = centre if centre is not None else [n / 2 - 0.3 for n in shape]
    grid = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(shape, centre, spacing, strict=True)],
                       indexing="ij")
    return sum((g / r) ** 2 for g, r in zip(grid, radii_mm, strict=True)) <= 1.0


def perturbed(t, kind, rng):
    """The prediction: ``t`` shifted, grown, shrunk, with a hole or with a spurious island."""
    if kind == "shift":
        return np.roll(t, tuple(rng.integers(1, 3, t.ndim) * rng.choice([-1, 1], t.ndim)), range(t.ndim))
    if kind == "grow":
        return ndimage.binary_dilation(t)
    if kind == "shrink":
        return ndimage.binary_erosion(t)
    if kind == "hole":
        inner = ndimage.binary_erosion(t, iterations=2)
        centre = np.argwhere(inner)[len(np.argwhere(inner)) // 2]
        hole = t.copy()
        hole[tuple(slice(c - 1, c + 2) for c in centre)] = False
        return hole
    island = t.copy()  # a small spurious structure near a corner
    island[tuple(slice(1, 1 + k) for k in (3, 3, 2)[: t.ndim])] = True
    return island


def mesh_cases():
    """31 cases: 2D and 3D, 0.6-1.2 mm pixels, 1, 2.5 and 5 mm slices, five perturbations, and the issue's
    4 x 4 x 3-voxel island at 5 mm slices."""
    rng = np.random.default_rng(22)
    cases = []
    for slice_mm in (1.0, 2.5, 5.0):
        for kind in ("shift", "grow", "shrink", "hole", "island"):
            px = float(rng.choice([0.6, 0.8, 1.0, 1.2]))
            sp3 = (px, px, slice_mm)
            t3 = ellipsoid((30, 30, int(60 / slice_mm) + 4), sp3, rng.uniform([6, 6, 10], [10, 10, 25]))
            cases.append((f"3d-{kind}-{slice_mm}mm", perturbed(t3, kind, rng), t3, sp3))
            sp2 = (px, slice_mm)
            t2 = ellipsoid((40, int(100 / slice_mm) + 6), sp2, rng.uniform([8, 15], [14, 40]))
            cases.append((f"2d-{kind}-{slice_mm}mm", perturbed(t2, kind, rng), t2, sp2))
    t = np.zeros((40, 60, 6), bool)
    t[5:35, 5:35, 1:4] = True
    p = t.copy()
    p[18:22, 50:54, 1:4] = True
    cases.append(("3d-issue-island-5mm", p, t, (0.8, 0.8, 5.0)))
    return cases


@pytest.mark.slow
def test_errors_against_meshmetrics_no_larger_than_deepmind():
    """ctbench's largest HD95, NSD and ASSD errors against MeshMetrics' exact mesh distances are no
    larger than those of DeepMind's surface-distance on the same 31 cases (NSD at the tolerance ctbench
    uses: the largest spacing)."""
    dm = pytest.importorskip("surface_distance")
    meshmetrics = pytest.importorskip("meshmetrics")
    errors = {k: {"ctbench": [], "deepmind": []} for k in ("hd95", "nsd", "assd")}
    cases = mesh_cases()
    assert len(cases) >= 30
    for _name, p, t, spacing in cases:
        tol = max(spacing)
        (row,) = case_metrics(p.astype(np.uint8), t.astype(np.uint8), spacing, {1: "x"}, tolerance_mm=tol)
        mesh = meshmetrics.DistanceMetrics(verbose=False)
        mesh.set_input(ref=t, pred=p, spacing=spacing)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ref = dm.compute_surface_distances(t, p, spacing)
        deepmind = {"hd95": dm.compute_robust_hausdorff(ref, 95),
                    "nsd": dm.compute_surface_dice_at_tolerance(ref, tol),
                    "assd": float(np.mean(dm.compute_average_surface_distance(ref)))}
        exact = {"hd95": mesh.hd(95), "nsd": mesh.nsd(tol), "assd": mesh.assd()}
        for k, v in exact.items():
            errors[k]["ctbench"].append(abs(row[k] - v))
            errors[k]["deepmind"].append(abs(deepmind[k] - v))
    for k, e in errors.items():
        assert max(e["ctbench"]) <= max(e["deepmind"]) + 1e-6, (k, max(e["ctbench"]), max(e["deepmind"]))
