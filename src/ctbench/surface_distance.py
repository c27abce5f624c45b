"""Surface distances weighted by boundary-element area: HD95, ASSD and NSD as Nikolov et al. define them.

Nikolov S. et al., "Clinically applicable segmentation of head and neck anatomy for radiotherapy: deep
learning algorithm development and validation study", J Med Internet Res 23:e26151 (2021), and DeepMind's
implementation (github.com/google-deepmind/surface-distance, ``compute_surface_distances``):

- each mask's boundary is cut into elements, one per 2^d block of neighbouring voxels (a 2x2x2 cube in
  3D, a 2x2 square in 2D) that holds both object and background; the element's measure ``a`` is the area
  of the marching-cubes triangles inside the cube (3D, mm^2) or the length of the marching-squares
  segments inside the square (2D, mm), for the voxel spacing. The table of measures per neighbourhood
  code is MONAI's (:func:`monai.metrics.utils.get_code_to_measure_table`, DeepMind's table);
- the distance ``d`` of an element of one mask is the Euclidean distance in mm (spacing applied, exact
  nearest neighbour by scipy's KD-tree) from its block centre to the nearest element of the other mask;
- directed percentile ``d_q(A -> B)``: the smallest distance such that elements of A holding at least
  q % of A's area lie within it (``numpy.percentile(..., weights=a, method="inverted_cdf")``);
  ``HDq = max(d_q(T -> P), d_q(P -> T))``;
- ``ASSD = (sum_T a d + sum_P a d) / (sum_T a + sum_P a)``, the area-weighted mean over both boundaries;
- ``NSD(tau) = (sum_T a [d <= tau] + sum_P a [d <= tau]) / (sum_T a + sum_P a)``.

Why it is written here: MONAI has the element table but weighs its HD95 and ASSD by voxel count (each
boundary voxel counts the same, so a small island of thick slices, large in area, falls under the 5 %),
and DeepMind's package is unmaintained, has a 2D and a 3D copy of each step and averages the two directed
means for ASSD instead of pooling the areas (Metrics Reloaded's ASSD). Its numbers are this module's
except that ASSD (``tests/test_surface_distance.py``). One function serves 2D and 3D.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: What made the distance numbers, written into ``summary.json`` as ``surface_distance``.
DEFINITION = "area-weighted surfels (Nikolov 2021)"

#: Distances within this many mm of the NSD tolerance count as within it (floating-point noise of the mm
#: coordinates: one voxel step of the tolerance's own length is within the tolerance).
TOLERANCE_SLACK_MM = 1e-6


@dataclass(frozen=True)
class SurfaceDistances:
    """Each boundary element's distance to the other mask's boundary (mm) and its area (mm^2; mm in 2D)."""

    truth_to_pred: np.ndarray
    truth_areas: np.ndarray
    pred_to_truth: np.ndarray
    pred_areas: np.ndarray


@functools.lru_cache(maxsize=64)
def _measure_table(spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(measure per neighbourhood code, the 2^d encoding kernel) for ``spacing``, from MONAI."""
    from monai.metrics.utils import get_code_to_measure_table

    table, kernel = get_code_to_measure_table(spacing)
    return table.numpy().astype(np.float64), kernel.numpy()[0, 0].astype(np.uint8)


def boundary_elements(mask: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Boundary elements of a binary mask on the grid of its 2^d blocks (one more point per axis).

    Returns:
        ``(position, area)``: the elements' block centres in mm, shape ``(n, d)``, and their areas,
        shape ``(n,)``. Block ``i`` holds voxels ``i - 1`` and ``i`` along each axis (outside the array is
        background), so its centre is ``(i - 1/2) * spacing`` in the voxel coordinates of ``mask``.
    """
    spacing = tuple(float(s) for s in spacing)
    table, kernel = _measure_table(spacing)
    padded = np.pad(np.asarray(mask, dtype=np.uint8), 1)
    grid = tuple(n + 1 for n in mask.shape)
    code = np.zeros(grid, dtype=np.uint8)
    for corner in itertools.product((0, 1), repeat=mask.ndim):
        code += padded[tuple(slice(c, c + n) for c, n in zip(corner, grid, strict=True))] * kernel[corner]
    index = np.argwhere((code != 0) & (code != len(table) - 1))
    return (index - 0.5) * np.asarray(spacing), table[code[tuple(index.T)]]


def surface_distances(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """Area-weighted surface distances between two non-empty binary masks of the same shape (2D or 3D).

    Crop the masks to the bounding box of ``pred | truth`` first: the cost is that box's, not the image's.
    """
    from scipy.spatial import KDTree

    at_p, area_p = boundary_elements(pred, spacing)
    at_t, area_t = boundary_elements(truth, spacing)
    # exact nearest neighbours among the (sparse) elements: cheaper than a distance transform of the box
    # (as MONAI's get_surface_distance does on CPU); leafsize 32 suits one batched query per tree
    return SurfaceDistances(truth_to_pred=KDTree(at_p, leafsize=32).query(at_t)[0], truth_areas=area_t,
                            pred_to_truth=KDTree(at_t, leafsize=32).query(at_p)[0], pred_areas=area_p)


def directed_percentile(distances: np.ndarray, areas: np.ndarray, q: float) -> float:
    """Smallest distance within which boundary elements holding ``q`` % of the area lie."""
    return float(np.percentile(distances, q, weights=areas, method="inverted_cdf"))


def hausdorff(sd: SurfaceDistances, q: float = 95.0) -> float:
    """``HDq``: the larger of the two directed ``q``-th area percentiles (q = 100: Hausdorff distance)."""
    return max(directed_percentile(sd.truth_to_pred, sd.truth_areas, q),
               directed_percentile(sd.pred_to_truth, sd.pred_areas, q))


def average_symmetric(sd: SurfaceDistances) -> float:
    """ASSD: the area-weighted mean distance over the elements of both boundaries."""
    total = float(sd.truth_areas.sum() + sd.pred_areas.sum())
    return float(sd.truth_to_pred @ sd.truth_areas + sd.pred_to_truth @ sd.pred_areas) / total


def surface_dice(sd: SurfaceDistances, tolerance_mm: float) -> float:
    """NSD: the fraction of both boundaries' area within ``tolerance_mm`` of the other boundary."""
    limit = tolerance_mm + TOLERANCE_SLACK_MM
    within = sd.truth_areas[sd.truth_to_pred <= limit].sum() + sd.pred_areas[sd.pred_to_truth <= limit].sum()
    return float(within / (sd.truth_areas.sum() + sd.pred_areas.sum()))
