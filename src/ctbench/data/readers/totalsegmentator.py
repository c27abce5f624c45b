"""TotalSegmentator folders: one folder per subject with ``ct.nii.gz`` and one binary mask per structure in
``segmentations/<structure>.nii.gz`` (Wasserthal et al. 2023). The masks of the configured classes are
merged once into one label map per subject (value = index in ``class_names``), cached under
``dataset.cache_dir/merged_labels/<hash of the class list>/`` and keyed by the masks' sizes and times."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctbench.data.readers.base import (
    DERIVED_VERSION,
    Case,
    CaseReader,
    derived_dir,
    gzip_bytes,
    refuse_missing,
    require_folder,
    sha1,
    stamp,
)
from ctbench.errors import CTBenchError


def merge_masks(mask_files: Sequence[Path], out: Path) -> None:
    """Write one label map: voxel = index (1-based) of the last mask that covers it."""
    import nibabel as nib

    from ctbench.atomic import atomic_write

    first = nib.load(str(mask_files[0]))
    shape = first.shape[:3]
    dtype = np.uint8 if len(mask_files) < 256 else np.uint16
    merged = np.zeros(shape, dtype=dtype)
    for value, path in enumerate(mask_files, start=1):
        img = nib.load(str(path))
        if img.shape[:3] != shape or not np.allclose(img.affine, first.affine, atol=1e-3):
            raise CTBenchError(f"{path}: mask grid {img.shape} differs from {mask_files[0].name} {shape}: "
                               "all masks of a subject must share one voxel grid")
        merged[np.asarray(img.dataobj).reshape(shape) > 0] = value
    img = nib.Nifti1Image(merged, first.affine, header=first.header)
    img.set_data_dtype(dtype)
    img.header.set_slope_inter(1, 0)
    atomic_write(out, lambda fh: fh.write(gzip_bytes(img.to_bytes())))


class TotalSegmentatorReader(CaseReader):
    """``root/<case_glob>/<image_file>`` with ``<masks_dir>/<structure>.nii.gz``; ``class_names[1:]`` name the
    structures (null: every structure of the first subject, sorted)."""

    @property
    def masks_dir(self) -> str:
        return str(self.dataset.get("masks_dir", "segmentations"))

    def subjects(self) -> tuple[Path, list[Path]]:
        root = Path(str(self.dataset["root"]))
        image_file, masks = str(self.dataset.get("image_file", "ct.nii.gz")), self.masks_dir
        pattern = str(self.dataset.get("case_glob") or "*")
        require_folder(root, f"a TotalSegmentator folder ({pattern}/{image_file}, {pattern}/{masks}/<structure>.nii.gz)")
        subjects = sorted(p for p in root.glob(pattern) if p.is_dir() and (p / masks).is_dir())
        if not subjects:
            raise CTBenchError(f"no subject folder with a {masks}/ folder matches {root}/{pattern}: expected "
                               f"{root}/s0001/{image_file} and {root}/s0001/{masks}/liver.nii.gz")
        return root, subjects

    def structure_names(self) -> list[str]:
        """Sorted structure names (mask file names without ``.nii.gz``) of the first subject."""
        _, subjects = self.subjects()
        return sorted(p.name.removesuffix(".nii.gz") for p in (subjects[0] / self.masks_dir).glob("*.nii.gz"))

    def class_names(self) -> list[str]:
        return ["background", *self.structure_names()]

    def cases(self, check_files: bool = True) -> list[Case]:
        root, subjects = self.subjects()
        image_file, masks = str(self.dataset.get("image_file", "ct.nii.gz")), self.masks_dir
        names = list(self.dataset.get("class_names") or [])
        structures = names[1:] if names else self.structure_names()  # class 0 is the background (no file)
        if not structures:
            raise CTBenchError("dataset.class_names lists no structure: give [background, liver, ...]")
        key = sha1({"structures": structures, "version": DERIVED_VERSION})[:12]
        out_dir = derived_dir(self.dataset) / "merged_labels" / key
        out_dir.mkdir(parents=True, exist_ok=True)
        if not (out_dir / "classes.json").exists():
            (out_dir / "classes.json").write_text(json.dumps(["background", *structures], indent=1) + "\n")
        cases, todo = [], []
        for subject in subjects:
            files = [subject / masks / f"{s}.nii.gz" for s in structures]
            absent = [f for f in files if not f.exists()]
            if absent:
                bad = absent[0].name.removesuffix(".nii.gz")
                raise CTBenchError(f"{subject.name}: no {masks}/{absent[0].name} ({len(absent)} of {len(files)} masks "
                                   f"missing): '{bad}' is not a structure of this dataset; check dataset.class_names "
                                   f"(names of the files in {masks}/)")
            label = out_dir / f"{subject.name}.nii.gz"
            key = sha1([stamp(f) for f in files])
            stamp_file = out_dir / f"{subject.name}.stamp"
            if not (label.exists() and stamp_file.exists() and stamp_file.read_text() == key):
                todo.append((files, label, stamp_file, key))
            cases.append({"case": subject.name, "image": str(subject / image_file), "label": str(label)})
        if todo:
            print(f"merging {len(structures)} TotalSegmentator masks into one label map for {len(todo)} subject(s) "
                  f"(once; cached in {out_dir})", file=sys.stderr)
        for files, label, stamp_file, key in todo:
            merge_masks(files, label)
            stamp_file.write_text(key)
        if check_files:
            refuse_missing(cases, f"the subject folders of {root}")
        return cases
