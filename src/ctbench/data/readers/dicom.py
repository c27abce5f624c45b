"""CT DICOM series with NIfTI label maps: one tree walked (``dicom_dir``) or a glob of series folders
(``series``). Each series is converted once to NIfTI under ``dataset.cache_dir/dicom_nifti/`` (keyed by the
DICOM files' sizes and modification times) and then used like a NIfTI case."""

from __future__ import annotations

import glob
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ctbench.data.readers.base import (
    DERIVED_VERSION,
    Case,
    CaseReader,
    derived_dir,
    gzip_bytes,
    refuse_missing,
    sha1,
    stamp,
)
from ctbench.errors import CTBenchError


def _tree_key(folder: Path) -> str:
    """Cheap fingerprint of a folder: every file's relative path, size and modification time."""
    entries = sorted([str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns]
                     for p in folder.rglob("*") if p.is_file())
    return sha1(entries)


def align_label(image: Path, label: Path, out: Path, tolerance_mm: float = 0.01) -> Path:
    """``label`` on ``image``'s voxel grid when the two grids are the same up to axis flips/permutations
    (dcm2niix and TotalSegmentator flip the rows against ctbench's converter); written to ``out`` once.
    Any other mismatch returns ``label`` unchanged (the integrity check then reports it)."""
    import nibabel as nib
    from nibabel.orientations import io_orientation, ornt_transform

    img, lab = nib.load(str(image)), nib.load(str(label))
    if img.shape[:3] == lab.shape[:3] and np.allclose(img.affine, lab.affine, atol=tolerance_mm):
        return label
    key, stamp_file = sha1([str(label), stamp(label), stamp(image)]), out.with_suffix(".stamp")
    if out.exists() and stamp_file.exists() and stamp_file.read_text() == key:
        return out
    moved = lab.as_reoriented(ornt_transform(io_orientation(lab.affine), io_orientation(img.affine)))
    if moved.shape[:3] != img.shape[:3] or not np.allclose(moved.affine, img.affine, atol=tolerance_mm):
        return label
    from ctbench.atomic import atomic_write

    data = np.asarray(moved.dataobj)
    aligned = nib.Nifti1Image(data, img.affine)
    aligned.set_data_dtype(data.dtype)
    aligned.set_sform(img.affine, code=1)
    aligned.set_qform(img.affine, code=1)
    atomic_write(out, lambda fh: fh.write(gzip_bytes(aligned.to_bytes())))
    stamp_file.write_text(key)
    return out


class DicomReader(CaseReader):
    """Images from ``dicom_dir`` (every CT series is a case, named as ``ctbench convert`` names its file) or
    ``series`` (one series folder per case); labels from ``labels`` (``<case>.nii.gz``) or ``label_mapping``."""

    def series(self) -> list[tuple[str, Any]]:
        """``[(case id, DicomSeries)]`` for every CT series."""
        from ctbench.data.dicom import folder_case_id, output_stem, read_dicom_series

        tree, pattern = self.dataset.get("dicom_dir"), self.dataset.get("series")
        if bool(tree) == bool(pattern):
            raise CTBenchError("dataset=dicom needs exactly one of dataset.dicom_dir=TREE (every CT series is a "
                               "case) or dataset.series='GLOB' (one series folder per case)", exit_code=2)
        out: list[tuple[str, Any]] = []
        if tree:
            index = 0
            for series in read_dicom_series(Path(str(tree))):
                if series.is_ct_volume:
                    index += 1  # the counter of `ctbench convert`, so case ids equal its file names
                    out.append((output_stem(series, index), series))
            return out
        folders = sorted(Path(p) for p in glob.glob(str(pattern)) if Path(p).is_dir())
        if not folders:
            raise CTBenchError(f"no folder matches dataset.series='{pattern}': give a glob of DICOM series folders")
        for folder in folders:
            cts = [s for s in read_dicom_series(folder) if s.is_ct_volume]
            if len(cts) != 1:
                found = "no CT series" if not cts else f"{len(cts)} CT series ({', '.join(s.label for s in cts)})"
                raise CTBenchError(f"{folder}: {found}; with dataset.series each folder must hold one CT series "
                                   "(use dataset.dicom_dir=TREE for mixed folders)")
            out.append((folder_case_id(folder.name, cts[0]), cts[0]))  # a pseudonym if the name is an identifier
        return out

    def labels(self) -> dict[str, Path]:
        """``{case id: label file}`` from ``label_mapping`` (JSON) or ``labels`` (folder of ``<case>.nii.gz``)."""
        mapping = self.dataset.get("label_mapping")
        if mapping:
            path = Path(str(mapping))
            try:
                table = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise CTBenchError(f"dataset.label_mapping {path} is not a readable JSON object ({err})") from None
            if not isinstance(table, Mapping):
                raise CTBenchError(f"dataset.label_mapping {path} is not a JSON object {{case: label file}}")
            return {str(k): (path.parent / str(v)).resolve() for k, v in table.items()}
        folder = Path(str(self.dataset.get("labels") or ""))
        if not self.dataset.get("labels") or not folder.is_dir():
            raise CTBenchError(f"dataset.labels={folder} is not a folder: give the folder of NIfTI label maps named "
                               "<case>.nii.gz, or dataset.label_mapping=FILE.json")
        return {p.name.removesuffix(".nii.gz").removesuffix(".nii"): p.resolve()
                for p in sorted(folder.iterdir()) if p.name.endswith((".nii.gz", ".nii"))}

    def cases(self, check_files: bool = True) -> list[Case]:
        """Series converted once to NIfTI (cached by the series files' stamps), paired with label maps."""
        from ctbench.atomic import atomic_write_json
        from ctbench.data.dicom import pseudonym_labels, series_to_nifti, write_nifti

        dataset = self.dataset
        out_dir = derived_dir(dataset) / "dicom_nifti"
        source = Path(str(dataset.get("dicom_dir") or dataset.get("series") or ""))
        force = bool(dataset.get("force", False))
        labels = self.labels()
        labels.update(pseudonym_labels(labels, out_dir / "label_links"))  # labels named after a series folder
        index_file = out_dir / "index.json"
        tree_key = _tree_key(source) if dataset.get("dicom_dir") and source.is_dir() else None
        index = json.loads(index_file.read_text()) if index_file.exists() else {}
        cases: list[Case] = []
        known = {c["case"]: c for c in index.get("cases", [])}
        if tree_key and index.get("tree_key") == tree_key and index.get("force") == force and all(
                c in known and Path(known[c]["image"]).exists() for c in index.get("series", []) if c in labels):
            converted = known  # tree unchanged and every labelled series converted: no DICOM header is read
            all_series = list(index["series"])
        else:
            converted = {}
            found = self.series()
            all_series = [c for c, _ in found]
            if not found:
                raise CTBenchError(f"no CT series under {source}: `ctbench convert {source} OUT` lists what is there")
            stale = []
            for case, series in found:
                if case not in labels:
                    continue
                nii = out_dir / f"{case}.nii.gz"
                key = sha1({"files": [[str(f), *stamp(f)[1:]] for f in series.files], "force": force,
                            "version": DERIVED_VERSION})
                stamp_file = out_dir / f"{case}.stamp"
                if not (nii.exists() and stamp_file.exists() and stamp_file.read_text() == key):
                    if not series.can_convert(force):
                        blocking = "; ".join(p.message for p in series.problems)
                        raise CTBenchError(f"DICOM series {case} ({series.label}) cannot be converted: {blocking}"
                                           + (" (dataset.force=true writes it anyway)"
                                              if all(p.forcible for p in series.problems) and not force else ""))
                    stale.append((case, series, nii, stamp_file, key))
                converted[case] = {"case": case, "image": str(nii)}
            for n, (case, series, nii, stamp_file, key) in enumerate(stale, start=1):
                print(f"converting DICOM series {n}/{len(stale)}: {case} ({series.n_slices} slices) -> {nii}",
                      file=sys.stderr)
                write_nifti(nii, series_to_nifti(series, force=force))
                stamp_file.write_text(key)
            unlabelled = [c for c, _ in found if c not in labels]
            if unlabelled:
                print(f"{len(unlabelled)} CT series without a label map skipped (first: {unlabelled[0]}); "
                      f"name a label <case>.nii.gz after it to use it", file=sys.stderr)
            if tree_key:
                atomic_write_json(index_file, {"tree_key": tree_key, "force": force,
                                               "series": [c for c, _ in found],
                                               "cases": sorted(converted.values(), key=lambda c: c["case"])})
        for case in sorted(converted):
            if case not in labels:
                continue
            image = Path(converted[case]["image"])
            label = labels[case]
            if label.exists() and image.exists():
                label = align_label(image, label, out_dir / "labels" / f"{case}.nii.gz")
            cases.append({"case": case, "image": str(image), "label": str(label)})
        if not cases:
            raise CTBenchError(f"no DICOM series under {source} has a label map: name each label after its case "
                               f"({', '.join(all_series[:3])}) or give dataset.label_mapping")
        if check_files:
            refuse_missing(cases, "the DICOM dataset")
        return cases
