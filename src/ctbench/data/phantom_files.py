"""A phantom's files in MSD layout, shared by both phantoms (:mod:`~ctbench.data.synthetic`,
:mod:`~ctbench.data.phantom`): the label names, ``dataset.json``, and each case's image and label
written atomically, stored RAS or LPS (the same world grid either way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LABELS: dict[int, str] = {0: "background", 1: "liver", 2: "spleen", 3: "kidney", 4: "lesion"}


def to_lps_storage(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same anatomy stored with voxel axes running towards Left, Posterior, Superior."""
    flipped = np.ascontiguousarray(array[::-1, ::-1, :])
    shape = np.asarray(array.shape)
    new = affine.copy()
    new[:3, :2] = -affine[:3, :2]
    new[:3, 3] = affine[:3, :3] @ np.array([shape[0] - 1, shape[1] - 1, 0]) + affine[:3, 3]
    return flipped, new


def phantom_manifest(name: str, description: str, reference: str, training: list[dict[str, Any]],
                     spec: dict[str, Any]) -> dict[str, Any]:
    """A phantom's MSD ``dataset.json``: one CT channel, :data:`LABELS`, the cases and the generating spec
    (``ctbench_spec``, compared on reuse)."""
    return {"name": name, "description": description, "reference": reference, "licence": "CC0",
            "tensorImageSize": "3D", "modality": {"0": "CT"}, "channel_names": {"0": "CT"},
            "labels": {str(k): v for k, v in LABELS.items()}, "numTraining": len(training),
            "file_ending": ".nii.gz", "training": training, "ctbench_spec": spec}


def write_case_files(out: Path, name: str, hu: np.ndarray, label: np.ndarray, affine: np.ndarray,
                     lps: bool) -> None:
    """One case in MSD layout, atomically: ``imagesTr/NAME.nii.gz`` (int16 HU) and ``labelsTr/NAME.nii.gz``
    (uint8), stored in LPS voxel order when ``lps`` (the same world grid), else RAS."""
    import nibabel as nib

    from ctbench.atomic import atomic_write

    if lps:
        (hu, _), (label, affine) = to_lps_storage(hu, affine), to_lps_storage(label, affine)
    for array, sub, dtype in ((hu, "imagesTr", np.int16), (label, "labelsTr", np.uint8)):
        img = nib.Nifti1Image(np.round(array).astype(dtype), affine)
        img.header.set_xyzt_units("mm")
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        atomic_write(out / sub / f"{name}.nii.gz", lambda fh, img=img: fh.write(_gz(img)))


def _gz(img) -> bytes:
    """NIfTI image as gzip-compressed bytes (what nibabel writes for ``.nii.gz``)."""
    import gzip

    return gzip.compress(img.to_bytes(), compresslevel=1)
