"""A converted series as an image: SimpleITK (LPS) or NIfTI (RAS), and the one CT volume of a folder.

SimpleITK: origin = first slice's ImagePositionPatient, direction columns = (row direction, column
direction, slice normal), spacing = (column spacing, row spacing, slice spacing). NIfTI: data indexed
``[column, row, slice]``, affine in RAS (the LPS affine with its first two rows negated), sform/qform
code 1 (scanner), units mm.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ctbench.data.dicom.decode import load_hu
from ctbench.data.dicom.series import scan_dicom_tree
from ctbench.data.dicom.types import DicomSeries
from ctbench.errors import CTBenchError


def series_to_sitk(series: DicomSeries, force: bool = False) -> sitk.Image:
    """HU volume with LPS geometry, as SimpleITK/ITK expect."""
    vol = load_hu(series, force=force)
    geo = series.geometry
    image = sitk.GetImageFromArray(vol)
    image.SetSpacing(tuple(float(s) for s in geo.spacing))
    image.SetOrigin(tuple(float(v) for v in geo.origin))
    image.SetDirection(tuple(float(v) for v in geo.direction.ravel()))
    return image


def series_to_nifti(series: DicomSeries, force: bool = False, volume: np.ndarray | None = None):
    """HU volume as a ``nibabel.Nifti1Image`` with a RAS affine."""
    import nibabel as nib

    vol = load_hu(series, force=force) if volume is None else volume
    affine = series.geometry.affine_ras()
    data = np.ascontiguousarray(vol.transpose(2, 1, 0))  # [slice,row,col] -> [col,row,slice] = (i,j,k)
    img = nib.Nifti1Image(data, affine)
    hdr = img.header
    hdr.set_data_dtype(data.dtype)
    hdr.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    hdr["descrip"] = b"ctbench convert: CT in HU"
    hdr["intent_name"] = b""
    hdr["aux_file"] = b""
    hdr["db_name"] = b""
    return img


def write_nifti(path: Path, img) -> None:
    """``img`` gzipped (mtime 0, so equal volumes give equal bytes), written atomically."""
    from ctbench.atomic import atomic_write

    raw = img.to_bytes()
    atomic_write(path, lambda fh: fh.write(gzip.compress(raw, compresslevel=6, mtime=0)))


def read_dicom_ct(folder: str | os.PathLike, series_number: int | None = None, force: bool = False) -> sitk.Image:
    """The single CT volume under ``folder`` as a SimpleITK image in HU (LPS geometry).

    With several CT series, ``series_number`` picks one; otherwise the error lists them.
    """
    scan = scan_dicom_tree(folder)
    cts = [s for s in scan.series if s.is_ct_volume]
    if series_number is not None:
        cts = [s for s in cts if s.series_number == series_number]
    if not cts:
        found = ", ".join(s.label for s in scan.series) or "no DICOM series"
        raise CTBenchError(f"no CT series{'' if series_number is None else f' number {series_number}'} "
                           f"under {folder} (found: {found})")
    if len(cts) > 1:
        raise CTBenchError(f"{len(cts)} CT series under {folder}: {', '.join(s.label for s in cts)}; "
                           "pick one by its series number, or run `ctbench convert` and use one NIfTI")
    return series_to_sitk(cts[0], force=force)
