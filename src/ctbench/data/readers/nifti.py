"""Image and label globs (``dataset.images``, ``dataset.labels``), paired by case id."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from ctbench.data.readers.base import Case, CaseReader, refuse_duplicates
from ctbench.errors import CTBenchError

#: file endings stripped from a file name to give its case id (longest first; every other dot is kept)
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
#: nnU-Net's channel suffix on image files (``CASE_0000.nii.gz``)
CHANNEL_SUFFIX = re.compile(r"_\d{4}$")


def case_id(path: str | Path) -> str:
    """File name without its image ending: ``case.v2.nii.gz`` -> ``case.v2``."""
    name = Path(path).name
    for ending in IMAGE_ENDINGS:
        if name.endswith(ending):
            return name.removesuffix(ending)
    return name


def _listing(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


class NiftiGlobReader(CaseReader):
    """``dataset.images`` and ``dataset.labels`` globs; an image and a label pair when their case ids are equal
    (an image's nnU-Net channel suffix ``_0000`` is dropped when every image carries one)."""

    def cases(self, check_files: bool = True) -> list[Case]:
        images, labels = str(self.dataset["images"]), str(self.dataset["labels"])
        image_files, label_files = sorted(glob.glob(images)), sorted(glob.glob(labels))
        if not image_files:
            raise CTBenchError(f"no image matches dataset.images='{images}': give a glob such as /data/ct/*.nii.gz")
        image_ids = [case_id(p) for p in image_files]
        if all(CHANNEL_SUFFIX.search(i) for i in image_ids):
            image_ids = [CHANNEL_SUFFIX.sub("", i) for i in image_ids]
        refuse_duplicates([case_id(p) for p in label_files], f"the labels matching '{labels}'")
        by_label = {case_id(p): p for p in label_files}
        unmatched_images = [p for i, p in zip(image_ids, image_files, strict=True) if i not in by_label]
        unmatched_labels = sorted(set(by_label) - set(image_ids))
        if unmatched_images or unmatched_labels:
            parts = []
            if unmatched_images:
                parts.append(f"{len(unmatched_images)} image(s) without a label: "
                             f"{_listing([Path(p).name for p in unmatched_images])}")
            if unmatched_labels:
                parts.append(f"{len(unmatched_labels)} label(s) without an image: "
                             f"{_listing([Path(by_label[i]).name for i in unmatched_labels])}")
            raise CTBenchError(f"dataset=nifti pairs files by case id (file name without .nii.gz); "
                               f"{'; '.join(parts)}: rename or remove them")
        return [{"case": i, "image": img, "label": by_label[i]} for i, img in zip(image_ids, image_files, strict=True)]
