"""One folder per case holding the image and the label under fixed names (KiTS19/KiTS23:
``case_00000/imaging.nii.gz`` + ``segmentation.nii.gz``)."""

from __future__ import annotations

from pathlib import Path

from ctbench.data.readers.base import Case, CaseReader, refuse_missing, require_folder
from ctbench.errors import CTBenchError


class CaseFoldersReader(CaseReader):
    """``root/<case_glob>/<image_file>`` and ``root/<case>/<label_file>``; the case id is the folder name."""

    def cases(self, check_files: bool = True) -> list[Case]:
        root = Path(str(self.dataset["root"]))
        image_file = str(self.dataset.get("image_file", "imaging.nii.gz"))
        label_file = str(self.dataset.get("label_file", "segmentation.nii.gz"))
        pattern = str(self.dataset.get("case_glob") or "*")
        require_folder(root, f"a folder of case folders ({pattern}/{image_file}, {pattern}/{label_file})")
        folders = sorted(p for p in root.glob(pattern) if p.is_dir())
        cases = [{"case": f.name, "image": str(f / image_file), "label": str(f / label_file)} for f in folders]
        if not cases:
            raise CTBenchError(f"no case folder matches {root}/{pattern}: expected e.g. {root}/case_00000/{image_file} "
                               f"(set dataset.case_glob)")
        if check_files:
            refuse_missing(cases, f"the case folders of {root}")
        return cases
