"""``ctbench convert --force`` on series with missing slices or uneven steps: every source slice stays at its
true world position (issue 12, row 13: before, every slice after a gap was placed at the median step)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from ctbench.cli import main

REAL = Path(__file__).parent / "real"
TS_DICOM = REAL / "totalseg-ct-dicom" / "dicom"
CT5N = REAL / "pydicom-ct-tiny" / "CT5N_regular_5slices"


def _by_height(folder: Path) -> list[Path]:
    return sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))


def _convert(src: Path, out: Path, *flags: str) -> tuple[nib.Nifti1Image, dict]:
    assert main(["convert", *flags, str(src), str(out)]) == 0
    (nii,) = out.glob("*.nii.gz")
    return nib.load(nii), json.loads(nii.with_name(nii.name.replace(".nii.gz", ".json")).read_text())


def _slice_index(img: nib.Nifti1Image, ds: pydicom.Dataset) -> int:
    """The NIfTI slice whose voxel (0, 0) is the file's ImagePositionPatient (LPS -> RAS), checked to 0.01 mm."""
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ijk = np.linalg.inv(img.affine) @ [-x, -y, z, 1.0]
    k = int(round(ijk[2]))
    np.testing.assert_allclose(img.affine @ [0, 0, k, 1], [-x, -y, z, 1.0], atol=0.01)
    return k


@pytest.mark.slow
def test_gap_in_the_real_series_keeps_every_slice_at_its_world_position(tmp_path, capsys):
    files = _by_height(TS_DICOM)  # 20 slices, 2 mm apart
    src = tmp_path / "gap"
    src.mkdir()
    removed = {5, 6, 7, 12}
    for k, path in enumerate(files):
        if k not in removed:
            shutil.copyfile(path, src / path.name)
    full, _ = _convert(TS_DICOM, tmp_path / "full")
    assert main(["convert", str(src), str(tmp_path / "refused")]) == 1  # without --force: reported, not written
    assert "missing slices: about 4 missing" in capsys.readouterr().err
    gap, side = _convert(src, tmp_path / "out", "--force")
    assert gap.shape == full.shape == (512, 512, 20)
    np.testing.assert_allclose(gap.affine, full.affine, atol=1e-6)  # the grid of the complete series
    assert side["forced"] is True and side["filled_slices"] == sorted(removed) and side["filled_hu"] == -1024
    assert side["interpolated_slices"] == []
    data, truth = np.asarray(gap.dataobj), np.asarray(full.dataobj)
    for path in src.iterdir():  # each remaining file: at its own position, with its own voxels
        ds = pydicom.dcmread(path)
        k = _slice_index(gap, ds)
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        np.testing.assert_array_equal(data[:, :, k], hu.T, err_msg=path.name)
        np.testing.assert_array_equal(data[:, :, k], truth[:, :, k])
    assert all((data[:, :, k] == -1024).all() for k in removed)


def test_uneven_steps_are_interpolated_onto_an_even_grid(tmp_path):
    """Slices at 0, 2.5, 6.0, 7.5, 10.0 mm (the middle one moved up 1 mm): steps 2.5/3.5/1.5/2.5 are uneven,
    so the grid takes the median step, 2.5 mm, from the first slice to the last; grid slice 2 (5.0 mm) lies
    between the sources at 2.5 and 6.0 mm: (1 - w) * s1 + w * s2 with w = 2.5 / 3.5."""
    src = tmp_path / "uneven"
    src.mkdir()
    files = _by_height(CT5N)
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        if k == 2:
            ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 1.0
        ds.save_as(src / path.name)
    img, side = _convert(src, tmp_path / "out", "--force")
    assert img.shape == (16, 16, 5) and side["slice_spacing_mm"] == 2.5
    assert side["interpolated_slices"] == [2] and side["filled_slices"] == []
    data = np.asarray(img.dataobj)
    hu = [pydicom.dcmread(src / p.name).pixel_array.astype(np.float64).T - 1024 for p in files]
    for k in (0, 1, 3, 4):
        assert _slice_index(img, pydicom.dcmread(src / files[k].name)) == k
        np.testing.assert_array_equal(data[:, :, k], hu[k])
    w = 2.5 / 3.5
    np.testing.assert_allclose(data[:, :, 2], (1 - w) * hu[1] + w * hu[2], atol=1e-3)


def test_a_wild_slice_position_is_refused_even_with_force(tmp_path, capsys):
    """One slice 100 km away would need 4e7 grid slices: refused, never allocated."""
    src = tmp_path / "wild"
    src.mkdir()
    for k, path in enumerate(_by_height(CT5N)):
        ds = pydicom.dcmread(path)
        if k == 4:
            ds.ImagePositionPatient[2] = 1e8
        ds.save_as(src / path.name)
    assert main(["convert", "--force", str(src), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "would hold 40000001 slices" in err and "a slice position is probably wrong" in err
