"""DICOM CT series -> Hounsfield-unit volumes: the reader behind ``ctbench convert`` and DICOM input,
and the DICOM SEG writer behind ``ctbench predict ... output_format=dicom-seg``.

One module per concern, each importing only those before it: ``headers`` (safe tag readers), ``deid``
(identifiers, scrubbing, pseudonyms), ``types`` (the shared types: ``DicomSeries``, ``Geometry``,
``SeriesProblem``), ``geometry`` (sorting along the slice normal, spacing/gap/tilt checks, the voxel
grid), ``decode`` (pixel data to HU on that grid), ``outputs`` (file names, case ids, the sidecar),
``series`` (walking a tree, grouping files into series, diagnosing each), ``volume`` (SimpleITK/NIfTI
images), ``convert`` (``ctbench convert``), ``seg`` (DICOM SEG). Public API (stable; predict and the datasets use it):

``read_dicom_series(folder, progress=False) -> list[DicomSeries]``
    Every series under ``folder`` (any layout, any file names), headers only. ``series.skip_reason``
    says why one is not a CT volume; ``series.problems`` what makes its volume wrong (uneven spacing,
    missing slices, gantry tilt, mixed image sizes ...). Files are sorted along the slice normal.
``series_to_sitk(series, force=False)`` / ``series_to_nifti(series, force=False)``
    The volume in HU (int16 when exact, else float32) as a SimpleITK image (LPS) or NIfTI (RAS affine).
    Raises :class:`CTBenchError` when the series has problems, unless ``force`` (forcible ones only).
``read_dicom_ct(folder, series_number=None, force=False) -> SimpleITK.Image``
    The one CT volume in ``folder``.
``convert_tree(dicom_dir, out_dir, force=False, keep_uids=False) -> ConvertResult`` / ``run_cli(args)``
    ``ctbench convert``.
``output_stem(series, index)`` / ``folder_case_id(name, series)``
    Identifier-free file names and case ids.

Decisions
---------
- Problems that ``--force`` writes anyway: uneven slice spacing or missing slices (written on an even
  grid along the normal with every source slice at its true position: grid slices in a gap are filled
  with -1024 HU, others between two source slices interpolated, both listed in the sidecar), gantry
  tilt (each slice shifted in-plane onto an orthogonal grid, as dcm2niix does). Not forcible: mixed
  image sizes, orientations or pixel spacings, duplicate slice positions, missing geometry tags,
  missing pixel data, multi-frame (enhanced) CT.
- Privacy: see :mod:`ctbench.data.dicom.deid`. Only a DICOM SEG (``seg``) carries the source study's
  patient and study modules, because a PACS files it with its CT.
"""

from ctbench.data.dicom.convert import ConvertResult, SeriesOutcome, convert_tree, print_summary, run_cli
from ctbench.data.dicom.decode import load_hu
from ctbench.data.dicom.deid import REMOVED, identifier_strings, pseudonym, pseudonym_labels, scrub_text
from ctbench.data.dicom.outputs import build_sidecar, folder_case_id, output_stem
from ctbench.data.dicom.series import DicomScan, read_dicom_series, scan_dicom_tree
from ctbench.data.dicom.types import DicomSeries, Geometry, SeriesProblem
from ctbench.data.dicom.volume import read_dicom_ct, series_to_nifti, series_to_sitk, write_nifti

__all__ = [
    "REMOVED", "ConvertResult", "DicomScan", "DicomSeries", "Geometry", "SeriesOutcome", "SeriesProblem",
    "build_sidecar", "convert_tree", "folder_case_id", "identifier_strings", "load_hu", "output_stem",
    "print_summary", "pseudonym", "pseudonym_labels",
    "read_dicom_ct", "read_dicom_series", "run_cli", "scan_dicom_tree", "scrub_text", "series_to_nifti",
    "series_to_sitk", "write_nifti",
]
