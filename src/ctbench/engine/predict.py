"""``ctbench predict``: NIfTI file(s) or a DICOM folder in, NIfTI label maps out in each input's own
geometry (same shape, affine, spacing and orientation as the image file), readable in 3D Slicer."""

from __future__ import annotations

import gzip
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from ctbench.atomic import atomic_write
from ctbench.errors import CTBenchError

NIFTI_ENDINGS = (".nii", ".nii.gz")


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_ENDINGS))


def _dicom_to_nifti(folder: Path, scratch: Path) -> list[Path]:
    """Every CT series below ``folder`` as a NIfTI file in ``scratch`` (the converter's geometry)."""
    from ctbench.data.dicom import output_stem, read_dicom_series, series_to_nifti

    series = [s for s in read_dicom_series(folder) if not s.skip_reason]
    if not series:
        raise CTBenchError(f"{folder} holds no NIfTI files and no CT DICOM series: "
                           "pass input=FILE.nii.gz, a folder of NIfTI files, or a DICOM folder")
    files = []
    for index, s in enumerate(series):
        path = scratch / f"{output_stem(s, index)}.nii.gz"
        series_to_nifti(s).to_filename(str(path))
        files.append(path)
    return files


def resolve_inputs(path: Path, scratch: Path) -> list[Path]:
    """NIfTI files named by ``input``: one file, a folder of them, or DICOM converted to ``scratch``."""
    if not path.exists():
        raise CTBenchError(f"input {path} does not exist: pass a NIfTI file, a folder of NIfTI files or a DICOM folder")
    if path.is_file():
        if not path.name.endswith(NIFTI_ENDINGS):
            return _dicom_to_nifti(path.parent, scratch)
        return [path]
    files = _nifti_files(path)
    return files or _dicom_to_nifti(path, scratch)


def largest_component_per_class(label: np.ndarray) -> np.ndarray:
    """Keep the largest connected component of every foreground class (MONAI's transform)."""
    from monai.transforms import KeepLargestConnectedComponent

    classes = [int(c) for c in np.unique(label) if c > 0]
    if not classes:
        return label
    kept = KeepLargestConnectedComponent(applied_labels=classes, independent=True)(torch.as_tensor(label)[None])
    return np.asarray(kept[0]).astype(label.dtype)


def predict_file(segmenter, cfg: DictConfig, path: Path, zscore: tuple[float, float] | None,
                 largest_component: bool = False) -> tuple[np.ndarray, Any]:
    """Label map of one NIfTI file on its own voxel grid (``segmenter``: a
    :class:`~ctbench.engine.segmenter.Segmenter`), and the loaded ``nibabel`` image."""
    import nibabel as nib

    from ctbench.data.transforms import eval_chain
    from ctbench.data.voxel_budget import check_voxel_budget

    try:
        original = nib.load(str(path))
        shape = original.shape
    except Exception as err:  # nibabel raises several types for bad files
        raise CTBenchError(f"cannot read {path}: {str(err).splitlines()[0][:160]}") from err
    if len(shape) != 3:
        raise CTBenchError(f"{path} has shape {shape}: predict needs a 3D volume (split 4D series into 3D files)")
    check_voxel_budget(path, cfg.dataset.preprocessing.spacing, cfg.dataset.get("max_voxels"))
    item = eval_chain(cfg.dataset.preprocessing, with_label=False, zscore=zscore)({"image": str(path)})
    image = item["image"]
    probs = segmenter.probs(image[None].to(segmenter.device))[0]
    label = segmenter.labels(probs, image.affine, original.affine, shape)
    if largest_component:
        label = largest_component_per_class(label)
    return label, original


def save_label(label: np.ndarray, original, path: Path) -> None:
    """Write ``label`` with the input's header (affine, qform/sform codes, units) as uint8 NIfTI."""
    import nibabel as nib

    header = original.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    out = nib.Nifti1Image(label.astype(np.uint8), original.affine, header=header)
    out.set_qform(original.get_qform(), code=int(original.header["qform_code"]))
    out.set_sform(original.get_sform(), code=int(original.header["sform_code"]))
    data = out.to_bytes()
    atomic_write(path, lambda fh: fh.write(gzip.compress(data, compresslevel=1) if path.name.endswith(".gz") else data))


def predict_inputs(segmenter, run_cfg: DictConfig, source: Path, output_dir: Path, cfg: DictConfig,
                   zscore: tuple[float, float] | None = None) -> list[Path]:
    """Predict every input and write ``output_dir/NAME.nii.gz``; prints one line per case."""
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    output_dir.mkdir(parents=True, exist_ok=True)
    names = list(run_cfg.dataset.class_names)
    table = Table(title=f"ctbench predict -> {output_dir}")
    for col in ("case", "shape", "seconds", *names[1:]):
        table.add_column(col, justify="left" if col == "case" else "right")
    written = []
    with tempfile.TemporaryDirectory(prefix="ctbench-dicom-") as scratch:
        inputs = resolve_inputs(source, Path(scratch))
        for path in track(inputs, description="Predicting", transient=True):
            start = time.perf_counter()
            label, original = predict_file(segmenter, run_cfg, path, zscore, bool(cfg.get("largest_component")))
            stem = path.name.removesuffix(".gz").removesuffix(".nii").removesuffix("_0000")
            target = output_dir / f"{stem}.nii.gz"
            save_label(label, original, target)
            written.append(target)
            spacing = np.prod(original.header.get_zooms()[:3]) / 1000.0
            table.add_row(stem, "x".join(map(str, label.shape)), f"{time.perf_counter() - start:.1f}",
                          *[f"{(label == c).sum() * spacing:.1f} ml" for c in range(1, len(names))])
    Console().print(table)
    return written
