"""Fully connected (dense) CRF post-processing — DeepLab v1 (Chen et al. 2014), after Krähenbühl &
Koltun 2011, "Efficient Inference in Fully Connected CRFs with Gaussian Edge Potentials".

Refines any model's class probabilities with mean-field inference on a CRF whose pairwise term links
**every** pair of voxels through two Gaussian kernels with a Potts compatibility:

- a smoothness kernel ``exp(-|p_i - p_j|^2 / 2 theta_gamma^2)`` (nearby voxels agree), and
- an appearance (bilateral) kernel ``exp(-|p_i - p_j|^2 / 2 theta_alpha^2 - |I_i - I_j|^2 / 2 theta_beta^2)``
  (nearby voxels of similar intensity agree), which snaps label boundaries to intensity edges.

Each mean-field step is ``Q <- softmax(log P + w_b * Bilateral(Q) + w_g * Gauss(Q))``. The Gaussian
filter is separable and exact; the bilateral filter uses a bilateral grid (Chen, Paris & Durand
2007: splat into a grid of cell size theta_alpha in space and theta_beta in intensity, blur it,
slice it back by linear interpolation), which costs O(N) per class for N voxels instead of O(N^2). Filters are normalised (a weighted mean of Q), so the weights are on the
scale of log-probabilities. Written in torch because no maintained dense-CRF package installs
here (``pydensecrf`` needs a C++ build against old Cython and is 2D-only; ``SimpleCRF`` is
unmaintained); it runs on CPU or GPU, in 2D and 3D.

Cost (``scripts/model_table.py``, this repository's 2-core x86_64 CPU, torch 2.13, float32): one
128^3 volume, 5 classes, 5 iterations, default sigmas: **about 4.5 s and 0.5 GB extra peak memory**
on a quiet machine (9-19 s while other jobs share the two cores); see ``docs/models.md``. The
cost is linear in voxels x classes x iterations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ctbench.errors import CTBenchError


def _blur_axis(x: torch.Tensor, axis: int, sigma: float) -> torch.Tensor:
    """1D Gaussian blur of ``x`` along ``axis`` (zero padding), truncated at 3 sigma.

    Written as a sum of shifted copies: on CPU this is about 5x faster than ``conv1d``/``conv3d``
    with one channel for the small kernels used here.
    """
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = (kernel / kernel.sum()).tolist()
    pad = [0, 0] * (x.ndim - axis - 1) + [radius, radius]
    padded = F.pad(x, pad)
    n = x.shape[axis]
    out = padded.narrow(axis, 0, n) * kernel[0]
    for i in range(1, len(kernel)):
        out.add_(padded.narrow(axis, i, n), alpha=kernel[i])
    return out


def _gaussian_filter(x: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    """Separable Gaussian over the trailing ``len(sigmas)`` axes of ``x``."""
    first = x.ndim - len(sigmas)
    for i, s in enumerate(sigmas):
        x = _blur_axis(x, first + i, s)
    return x


class _BilateralGrid:
    """Normalised bilateral filter of ``[B, C, *spatial]`` maps guided by one intensity image.

    The grid has one intensity axis (cell = ``intensity_sigma``) and the spatial axes (cell =
    ``round(spatial_sigma)`` voxels). Splat: each voxel adds its value to its spatial cell at the two
    nearest intensity levels (linear weights) with ``scatter_add``. Blur: separable Gaussian of one
    cell. Slice: ``grid_sample`` at the voxel's position at the same two levels, with the intensity
    levels stacked along the first spatial axis so (bi/tri)linear sampling works in 2D and 3D.
    Everything is O(C * N) per call for N voxels.
    """

    def __init__(self, intensity: torch.Tensor, spatial_sigmas: Sequence[float], intensity_sigma: float) -> None:
        b, *size = intensity.shape  # intensity in [0, 1]
        dev, dt = intensity.device, intensity.dtype
        self.factors = [max(1, int(round(s))) for s in spatial_sigmas]
        self.small = [-(-n // f) for n, f in zip(size, self.factors, strict=True)]
        u = intensity.reshape(b, -1) / intensity_sigma
        self.levels = int(math.ceil(float(u.max()))) + 2
        level = u.floor().clamp(0, self.levels - 2)
        frac = (u - level).clamp(0, 1)
        n_small = math.prod(self.small)
        # spatial cell of every voxel (box splat), flattened
        cell = torch.zeros(size, dtype=torch.long, device=dev)
        coords = []
        for axis, (n, f, m) in enumerate(zip(size, self.factors, self.small, strict=True)):
            shape = [1] * len(size)
            shape[axis] = n
            p = torch.arange(n, device=dev)
            cell = cell * m + (p // f).view(shape)
            # continuous position in the small grid (cell centres at (i + 0.5) f - 0.5)
            coords.append(((p.to(dt) + 0.5) / f - 0.5).clamp(0, m - 1).view(shape).expand(size).reshape(-1))
        self.index0 = level.long() * n_small + cell.reshape(1, -1)  # [B, N]
        self.weights = (1 - frac).unsqueeze(1), frac.unsqueeze(1)  # [B, 1, N] each
        self.grid_sigmas = [1.0] + [s / f for s, f in zip(spatial_sigmas, self.factors, strict=True)]
        self.n_small, self.size, self.batch = n_small, size, b
        # sampling grids for the two levels; grid_sample wants (x, y[, z]) = last axis first
        stacked = [self.levels * self.small[0], *self.small[1:]]
        grids = []
        for offset in (0, 1):
            first = level * self.small[0] + coords[0].unsqueeze(0) + offset * self.small[0]
            axes = [first] + [c.unsqueeze(0).expand(b, -1) for c in coords[1:]]
            norm = [(2 * a / max(n - 1, 1) - 1) for a, n in zip(axes, stacked, strict=True)]
            g = torch.stack(norm[::-1], -1)  # [B, N, dims]
            grids.append(g.view(b, -1, *([1] * (len(size) - 1)), len(size)))
        self.grids = grids
        self.norm = self._filter(torch.ones(b, 1, *size, dtype=dt, device=dev))

    def _filter(self, values: torch.Tensor) -> torch.Tensor:
        b, c = values.shape[:2]
        flat = values.reshape(b, c, -1)
        grid = torch.zeros(b, c, self.levels * self.n_small, dtype=values.dtype, device=values.device)
        for offset, w in zip((0, self.n_small), self.weights, strict=True):  # splat
            grid.scatter_add_(2, (self.index0 + offset).unsqueeze(1).expand(b, c, -1), flat * w)
        grid = grid.view(b, c, self.levels, *self.small)
        grid = _gaussian_filter(grid, self.grid_sigmas)  # blur over intensity and space
        stacked = grid.reshape(b, c, self.levels * self.small[0], *self.small[1:])
        out = 0
        for g, w in zip(self.grids, self.weights, strict=True):  # slice
            sampled = F.grid_sample(stacked, g, mode="bilinear", padding_mode="border", align_corners=True)
            out = out + sampled.reshape(b, c, -1) * w
        return out.reshape(values.shape)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        return self._filter(q) / self.norm.clamp_min(1e-6)


def dense_crf(probs: torch.Tensor, image: torch.Tensor, iterations: int = 5,
              gaussian_sigma: float | Sequence[float] | None = None, gaussian_weight: float = 1.0,
              bilateral_sigma: float | Sequence[float] | None = None, intensity_sigma: float = 0.05,
              bilateral_weight: float = 3.0, spacing: Sequence[float] | None = None,
              intensity_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Mean-field inference of a fully connected CRF; returns refined probabilities.

    Args:
        probs: class probabilities ``[B, C, *spatial]`` (2D or 3D; softmax output).
        image: the intensities that guide the bilateral kernel, ``[B, I, *spatial]`` (channels averaged).
        iterations: mean-field steps (DeepLab: 10; 5 is usually converged).
        gaussian_sigma: theta_gamma, smoothness kernel width in voxels, or in mm when ``spacing`` is
            given; default 1 voxel.
        gaussian_weight: w_gamma.
        bilateral_sigma: theta_alpha, spatial width of the appearance kernel in voxels, or in mm when
            ``spacing`` is given; default 8 voxels.
        intensity_sigma: theta_beta, intensity width as a fraction of the intensity range.
        bilateral_weight: w_alpha.
        spacing: voxel size per spatial axis (mm); when given, explicit sigmas are in mm (the defaults
            stay in voxels).
        intensity_range: ``(low, high)`` mapped to ``[0, 1]`` before filtering (clipped); default the
            0.5 and 99.5 percentiles of the image.

    Returns:
        refined probabilities with the shape of ``probs``.
    """
    if probs.ndim not in (4, 5) or image.ndim != probs.ndim or probs.shape[2:] != image.shape[2:] \
            or probs.shape[0] != image.shape[0]:
        raise CTBenchError(f"dense_crf needs probs [B, C, *spatial] and image [B, I, *spatial] of the same size, "
                           f"got {tuple(probs.shape)} and {tuple(image.shape)}")
    dims = probs.ndim - 2
    spacing = list(spacing) if spacing is not None else [1.0] * dims

    def per_axis(sigma: float | Sequence[float] | None, default_voxels: float) -> list[float]:
        if sigma is None:
            return [default_voxels] * dims
        s = [float(sigma)] * dims if isinstance(sigma, (int, float)) else [float(v) for v in sigma]
        return [v / sp for v, sp in zip(s, spacing, strict=True)]

    dtype = torch.float32
    p = probs.to(dtype)
    intensity = image.to(dtype).mean(1)
    if intensity_range is None:
        flat = intensity.flatten()
        sample = flat[:: max(1, flat.numel() // 1_000_000)]
        lo, hi = torch.quantile(sample, 0.005).item(), torch.quantile(sample, 0.995).item()
    else:
        lo, hi = intensity_range
    intensity = ((intensity - lo) / max(hi - lo, 1e-6)).clamp(0, 1)
    bilateral = _BilateralGrid(intensity, per_axis(bilateral_sigma, 8.0), intensity_sigma)
    g_sigmas = per_axis(gaussian_sigma, 1.0)
    g_norm = _gaussian_filter(torch.ones_like(p[:, :1]), g_sigmas)
    unary = p.clamp_min(1e-8).log()
    q = p
    for _ in range(iterations):
        message = bilateral_weight * bilateral(q) + gaussian_weight * _gaussian_filter(q, g_sigmas) / g_norm
        q = torch.softmax(unary + message, 1)
    return q.to(probs.dtype)


#: The weights and widths of :func:`dense_crf` a config may set (``crf.*`` of ``ctbench eval``), with their bounds:
#: weights on the log-probability scale; sigmas in mm (the wider, the cheaper the bilateral grid; the
#: narrower, the larger it grows), the intensity width as a fraction of the intensity range.
CRF_SETTINGS = {"gaussian_weight": (0.0, 50.0), "gaussian_sigma": (0.5, 200.0), "bilateral_weight": (0.0, 50.0),
                "bilateral_sigma": (0.5, 200.0), "intensity_sigma": (0.01, 1.0)}


def crf_settings(block: Mapping[str, Any] | None) -> dict[str, float]:
    """The keyword arguments of :func:`dense_crf` in a config's ``crf`` block (null entries: its defaults),
    each a number within :data:`CRF_SETTINGS`; anything else is one-line refusal."""
    out: dict[str, float] = {}
    for key, value in (block or {}).items():
        if key not in CRF_SETTINGS:
            raise CTBenchError(f"crf.{key}: not a dense CRF setting; use {', '.join(CRF_SETTINGS)}", exit_code=2)
        if value is None:
            continue
        low, high = CRF_SETTINGS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise CTBenchError(f"crf.{key}={value!r}: give a number from {low:g} to {high:g}", exit_code=2)
        out[key] = float(value)
    return out
