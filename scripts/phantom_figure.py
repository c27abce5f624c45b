"""Calibration of the CT phantom against real CT: the HU table and the slice figure of docs/phantom.md.

    .venv/bin/python scripts/phantom_figure.py [--real /work/shared/data/real] [--out docs]

Prints the HU (mean +- sd) inside the TotalSegmentator labels of the real non-contrast NIfTI and the
contrast-phase DICOM series (interior: label eroded by one voxel; bones: whole label; fat: unlabelled
voxels in [-190, -30] HU), the same statistics measured on generated phantom cases, and the lag-1 noise
correlation; writes ``OUT/phantom_slices.png``: a real slice of each phase beside a phantom slice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

#: TotalSegmentator v2 "total" label values per tissue of the phantom (labels_total_v2.tsv).
GROUPS = {"liver": [5], "spleen": [1], "kidney": [2, 3], "aorta": [52], "ivc": [63], "portal_vein": [64],
          "lung": [10, 11, 12, 13, 14], "muscle": [80, 81, 82, 83, 84, 85, 86, 87, 88, 89],
          "vertebra": list(range(25, 51)), "rib": list(range(92, 116))}
BONES = ("vertebra", "rib")


def load_real(real: Path) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[float, float, float]]]:
    """``{phase: (hu, labels, spacing)}`` on RAS-like voxel grids (x towards the patient's left for DICOM)."""
    import nibabel as nib
    import SimpleITK as sitk

    abdomen = real / "totalseg-abdomen-ct"
    plain = np.asarray(nib.load(abdomen / "example_ct.nii.gz").dataobj, dtype=np.float32)
    plain_seg = np.asarray(nib.load(abdomen / "example_seg_fast_force_split.nii.gz").dataobj)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(real / "totalseg-ct-dicom" / "dicom")))
    series = reader.Execute()
    # SimpleITK: [k, row, column]; the label map is column, 511 - row, slice (the README's dcm2niix layout)
    contrast = sitk.GetArrayFromImage(series).transpose(2, 1, 0)[:, ::-1, :].astype(np.float32)
    contrast_seg = np.asarray(nib.load(real / "totalseg-ct-dicom" / "example_seg_dicom.nii.gz").dataobj)
    return {"non_contrast": (plain, plain_seg, (3.0, 3.0, 3.0)),
            "portal_venous": (contrast, contrast_seg, tuple(series.GetSpacing()))}


def tissue_stats(hu: np.ndarray, inside: dict[str, np.ndarray]) -> dict[str, tuple[float, float, int]]:
    """(mean, sd, voxels) per tissue mask; soft tissues eroded by one voxel, bones whole."""
    out = {}
    for name, mask in inside.items():
        if name not in BONES and name != "fat":
            mask = ndimage.binary_erosion(mask)
        if mask.sum():
            values = hu[mask]
            out[name] = (float(values.mean()), float(values.std()), int(mask.sum()))
    return out


def real_stats(hu: np.ndarray, seg: np.ndarray) -> dict[str, tuple[float, float, int]]:
    masks = {name: np.isin(seg, ids) for name, ids in GROUPS.items()}
    masks["fat"] = (seg == 0) & (hu >= -190) & (hu <= -30)
    return tissue_stats(hu, masks)


def lag1_correlation(hu: np.ndarray, organ: np.ndarray) -> float:
    """Correlation of neighbouring voxels (first axis) of the residual after a 7-voxel mean, deep in ``organ``."""
    inner = ndimage.binary_erosion(organ, iterations=3)
    residual = (hu - ndimage.uniform_filter(hu, 7)) * inner
    a, b = residual[:-1], residual[1:]
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def phantom_stats(phase: str, spacing: tuple[float, float, float], cases: int = 3):
    from ctbench.data import phantom as ph
    from ctbench.data.phantom_anatomy import TID

    merged: dict[str, list[np.ndarray]] = {}
    lag = []
    for i in range(cases):
        case = ph.make_case(np.random.default_rng([2026, i]), spacing, phase, streak_probability=0.0)
        names = [n for n in ph.TARGETS[phase] if n != "air"]
        stats_masks = {n: case.tissue == TID[n] for n in names}
        for name, mask in stats_masks.items():
            if name not in BONES:
                mask = ndimage.binary_erosion(mask)
            merged.setdefault(name, []).append(case.hu[mask])
        lag.append(lag1_correlation(case.hu, case.tissue == TID["liver"]))
    return {n: (float(np.concatenate(v).mean()), float(np.concatenate(v).std()), int(sum(a.size for a in v)))
            for n, v in merged.items()}, float(np.mean(lag))


def print_tables(real: dict) -> None:
    from ctbench.data import phantom as ph

    measured = {phase: real_stats(hu, seg) for phase, (hu, seg, _) in real.items()}
    generated = {phase: phantom_stats(phase, (1.3, 1.3, 3.0)) for phase in ph.PHASES}
    print("| tissue | real non-contrast | phantom non-contrast | real contrast phase | phantom portal-venous |")
    print("|---|---|---|---|---|")
    for name in ("liver", "spleen", "kidney", "aorta", "ivc", "portal_vein", "muscle", "fat", "lung", "vertebra", "rib"):
        cells = []
        for phase in ph.PHASES:
            got = measured[phase].get(name)
            cells.append(f"{got[0]:.1f} ± {got[1]:.1f} ({got[2]})" if got else "—")
            gen = generated[phase][0][name]
            cells.append(f"{gen[0]:.1f} ± {gen[1]:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for phase, (hu, seg, _) in real.items():
        print(f"lag-1 voxel correlation of the liver residual, real {phase}: {lag1_correlation(hu, seg == 5):.2f}; "
              f"phantom at 1.3 mm: {generated[phase][1]:.2f}")
    aorta = ndimage.binary_erosion(np.isin(real["portal_venous"][1], GROUPS["aorta"]))
    q = np.percentile(real["portal_venous"][0][aorta], [25, 50, 75, 95])
    print(f"contrast-phase aorta interior: median {q[1]:.0f}, IQR/1.349 {(q[2] - q[0]) / 1.349:.1f}, 95th pct {q[3]:.0f}")


def axial(ax, image: np.ndarray, spacing, title: str, contours: np.ndarray | None = None) -> None:
    """One axial slice (RAS voxel order) in radiological display: patient's right on the left, anterior up,
    a 380 x 300 mm window around the body so that every panel has the same scale."""
    shown = np.clip(image[::-1, ::-1].T, -160, 240)
    extent = (0, image.shape[0] * spacing[0], 0, image.shape[1] * spacing[1])
    rows, cols = np.nonzero(ndimage.binary_opening(shown[::-1] > -400, iterations=2))
    centre = (cols.mean() * spacing[0], rows.mean() * spacing[1])
    ax.set_xlim(centre[0] - 190, centre[0] + 190)
    ax.set_ylim(centre[1] - 150, centre[1] + 150)
    ax.imshow(shown, cmap="gray", extent=extent, vmin=-160, vmax=240)
    ax.set_autoscale_on(False)
    ax.set_facecolor("black")
    if contours is not None:
        ax.contour(contours[::-1, ::-1].T[::-1], levels=[0.5, 1.5, 2.5, 3.5], colors=["r", "g", "b", "y"],
                   linewidths=0.6, extent=extent)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("mm", fontsize=7)
    ax.tick_params(labelsize=6)


def figure(real: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ctbench.data import phantom as ph

    fig, axes = plt.subplots(2, 3, figsize=(13, 8.4))
    for row, phase in enumerate(ph.PHASES):
        hu, seg, spacing = real[phase]
        k = int(np.argmax((np.isin(seg, [1, 5])).sum((0, 1))))
        image = hu[:, :, k]
        if phase == "portal_venous":  # DICOM grid: x runs towards the patient's left, y posterior -> flip to RAS
            image = image[::-1, :]
        axial(axes[row, 0], image, spacing, f"real CT, {'non-contrast' if row == 0 else 'contrast phase'} "
                                          f"({spacing[0]:.2f} x {spacing[1]:.2f} x {spacing[2]:.1f} mm)")
        case = ph.make_case(np.random.default_rng([2026, 10 + row]), (1.3, 1.3, 3.0), phase, streak_probability=0.0)
        k = int(np.argmax(((case.label == 1) | (case.label == 2)).sum((0, 1))))
        axial(axes[row, 1], case.hu[:, :, k], case.info["spacing"], f"phantom, {phase.replace('_', '-')} "
                                                                    "(1.3 x 1.3 x 3 mm)")
        lesion = case.label == 4
        k = int(np.argmax(lesion.sum((0, 1)))) if lesion.any() else k
        axial(axes[row, 2], case.hu[:, :, k], case.info["spacing"], "same case, labels (liver, spleen, kidney, "
                                                                    "lesion)", contours=case.label[:, :, k])
    fig.suptitle("Window L40 W400 (-160..240 HU); patient's right on the left, anterior up", fontsize=10)
    fig.tight_layout()
    path = out / "phantom_slices.png"
    fig.savefig(path, dpi=90)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=Path("/work/shared/data/real"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    real = load_real(args.real)
    print_tables(real)
    print(f"wrote {figure(real, args.out)}")


if __name__ == "__main__":
    main()
