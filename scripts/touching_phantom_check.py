#!/usr/bin/env python
"""What ``dataset=phantom_touching`` holds (C22), read back from its files, and the U-Net border term on it.

    .venv/bin/python scripts/touching_phantom_check.py                 # prints the table of docs/phantom.md
    .venv/bin/python scripts/touching_phantom_check.py --figure docs/phantom_touching.png

Generates the dataset on first use (about 100 s of CPU). Per file (RAS, the file's own grid, where the study
tests): truth lesion components (full connectivity) against the drawn lesions of ``dataset.json``. On the first
``--cases`` label maps, the liver voxels next to two lesion components (the one-voxel borders) and the U-Net
weight map there, per 2D slice as 2D training computes it (w0 10, sigma 5 voxels, class balance), with
``border_on`` ``background`` (the paper's) and ``other_objects``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ctbench.config import compose
from ctbench.data.datasets import list_cases
from ctbench.data.weight_maps import unet_weight_map

FULL = ndimage.generate_binary_structure(3, 3)


def read(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The RAS array of a NIfTI file and its voxel size."""
    image = nib.as_closest_canonical(nib.load(path))
    return np.asarray(image.dataobj), np.asarray(image.header.get_zooms()[:3], dtype=float)


def borders(label: np.ndarray) -> np.ndarray:
    """Liver voxels (label 1) in the full-connectivity neighbourhood of two or more lesion components."""
    components, n = ndimage.label(label == 4, FULL)
    near = sum(ndimage.binary_dilation(components == k, FULL).astype(np.int16) for k in range(1, n + 1))
    return (np.asarray(near) >= 2) & (label == 1)


def figure(image: np.ndarray, label: np.ndarray, out: Path) -> None:
    """The axial slice with the most lesion voxels: the abdomen (window L40 W400, contours) and a zoom on the
    lesions with each truth component in its own colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    components, _ = ndimage.label(label == 4, FULL)
    z = int(np.argmax((label == 4).sum((0, 1))))
    xs, ys = np.nonzero(label[:, :, z] == 4)
    box = np.s_[max(xs.min() - 6, 0):xs.max() + 7, max(ys.min() - 6, 0):ys.max() + 7, z]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    axes[0].imshow(np.clip(image[:, :, z].T, -160, 240), cmap="gray", origin="lower")
    for value, colour in ((1, "r"), (2, "g"), (3, "b"), (4, "y")):
        axes[0].contour((label[:, :, z] == value).T, [0.5], colors=colour, linewidths=0.6)
    axes[1].imshow(np.clip(image[box].T, -160, 240), cmap="gray", origin="lower", interpolation="nearest")
    shown = components[box].T
    axes[1].imshow(np.ma.masked_where(shown == 0, shown), cmap="tab10", alpha=0.4, origin="lower",
                   interpolation="nearest")
    axes[0].set_title(f"slice {z}: liver red, lesions yellow", fontsize=9)
    axes[1].set_title("zoom: one colour per truth lesion", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out, dpi=70)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="label maps whose weight maps are measured")
    parser.add_argument("--figure", type=Path, help="write the slice of case 0 with the most lesion voxels")
    args = parser.parse_args()
    dataset = compose("train", ["dataset=phantom_touching"]).dataset
    list_cases(dataset)  # generates the files on first use
    root = Path(dataset.root)
    entries = json.loads((root / "dataset.json").read_text())["training"]
    drawn = [len(e["lesions"]) for e in entries]
    diameters = [les["diameter_mm"] for e in entries for les in e["lesions"]]
    clusters = [len({les["cluster"] for les in e["lesions"]}) for e in entries]
    print(f"{len(entries)} cases, {sum(drawn)} drawn lesions ({np.mean(drawn):.2f} per case, {min(drawn)}-{max(drawn)}), "
          f"{clusters.count(1)} cases with one cluster, {clusters.count(2)} with two; equivalent diameters "
          f"{min(diameters):.1f}-{max(diameters):.1f} mm, median {np.median(diameters):.1f}")
    mismatched = []
    for i, entry in enumerate(entries):
        label, _ = read(root / entry["label"])
        found = ndimage.label(label == 4, FULL)[1]
        if found != drawn[i]:
            mismatched.append(f"case {i}: {found} components for {drawn[i]} drawn")
    print(f"one truth component per drawn lesion in {len(entries) - len(mismatched)} of {len(entries)} files; "
          + ("; ".join(mismatched) or "all"))
    gap_voxels, paper, other, ratios = 0, [], [], []
    for entry in entries[:args.cases]:
        label, _ = read(root / entry["label"])
        gap = borders(label)
        w_paper = unet_weight_map(label, 10.0, 5.0, True, per_slice=True)
        w_other = unet_weight_map(label, 10.0, 5.0, True, per_slice=True, border_on="other_objects")
        balance = unet_weight_map(label, 0.0, 5.0, True, per_slice=True)
        gap_voxels += int(gap.sum())
        paper.append(w_paper[gap] - balance[gap])
        other.append(w_other[gap] - balance[gap])
        ratios.append(float(balance[label == 4].mean() / balance[label == 1].mean()))
    paper_gap, other_gap = np.concatenate(paper), np.concatenate(other)
    print(f"first {args.cases} cases: {gap_voxels} liver voxels next to two lesions; border term there "
          f"(w0 10, sigma 5) border_on=background: mean {paper_gap.mean():.2f}, max {paper_gap.max():.2f}; "
          f"other_objects: mean {other_gap.mean():.2f}, min {other_gap.min():.2f}; class balance lesion / liver "
          f"weight {min(ratios):.0f}-{max(ratios):.0f}x")
    if args.figure:
        image, _ = read(root / entries[0]["image"])
        label, _ = read(root / entries[0]["label"])
        figure(image, label, args.figure)


if __name__ == "__main__":
    main()
