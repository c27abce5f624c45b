"""Medical Segmentation Decathlon and nnU-Net v2 raw folders (``dataset.json``, ``imagesTr/``, ``labelsTr/``),
and the synthetic phantom, which is written in the same layout.

nnU-Net v2 (``nnunetv2/dataset_conversion``, ``documentation/dataset_format.md``): ``labels`` maps names to
values, ``channel_names`` numbers the input channels, and ``imagesTr/CASE_XXXX.ext`` holds channel XXXX of
a case. MSD: ``labels`` maps values to names and ``training`` lists the pairs. Region-based labels (a list
of values per name, nnU-Net's BraTS regions) are refused: ctbench trains one class per value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ctbench.data.readers.base import Case, CaseReader, inside, refuse_missing, require_folder
from ctbench.errors import CTBenchError

#: largest dataset.json read: a bigger one is not a manifest (and would be read whole into memory)
MAX_MANIFEST_BYTES = 64_000_000


def read_manifest(root: Path, manifest: str = "dataset.json") -> dict[str, Any]:
    path = root / manifest
    if not path.is_file():
        raise CTBenchError(f"{root} has no {manifest}: expected an MSD/nnU-Net raw folder "
                           f"({manifest}, imagesTr/, labelsTr/)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise CTBenchError(f"{path} is {path.stat().st_size} bytes, over the {MAX_MANIFEST_BYTES}-byte cap for a "
                           "dataset manifest: it is not an MSD/nnU-Net dataset.json")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise CTBenchError(f"{path} is not valid JSON ({err}): fix or regenerate it") from None
    if not isinstance(meta, dict):
        raise CTBenchError(f"{path} holds a {type(meta).__name__}, not a JSON object: fix or regenerate it")
    return meta


def msd_labels(root: Path, manifest: str = "dataset.json") -> dict[int, str]:
    """``{id: name}`` from an MSD (``{"1": "liver"}``) or nnU-Net v2 (``{"liver": 1}``) ``labels`` block."""
    labels = read_manifest(root, manifest).get("labels") or {}
    regions = [str(k) for k, v in labels.items() if isinstance(v, list | dict)]
    if regions:
        raise CTBenchError(f"{root / manifest} has region-based labels ({', '.join(regions)}: lists of values): "
                           "ctbench trains one class per label value; convert the regions to plain labels first")
    out = {}
    for key, value in labels.items():
        if str(key).isdigit():
            out[int(key)] = str(value)
        elif isinstance(value, int):
            out[value] = str(key)
    return dict(sorted(out.items()))


#: a file ending of dataset.json: ``.nii.gz``, ``.mha``; never a path (``.nii.gz/../x``)
_FILE_ENDING = re.compile(r"^(\.[A-Za-z0-9]{1,8}){1,3}$")


def channel_count(meta: Mapping[str, Any]) -> int:
    """Input channels: nnU-Net v2 ``channel_names`` or MSD ``modality`` entries (one when neither is given)."""
    channels = meta.get("channel_names") or meta.get("modality") or {"0": "CT"}
    return max(1, len(channels)) if isinstance(channels, Mapping) else 1


def channel_files(image: Path, ending: str, channels: int) -> Path | list[Path]:
    """``CASE_0000.ext`` (one channel) or ``[CASE_0000.ext, ..., CASE_000N.ext]`` for ``image`` = ``CASE.ext``."""
    stem = image.name.removesuffix(ending)
    files = [image.with_name(f"{stem}_{k:04d}{ending}") for k in range(channels)]
    return files[0] if channels == 1 else files


class MSDReader(CaseReader):
    """``dataset.root`` with ``dataset.manifest`` (``dataset.json``): the manifest's ``lists`` (MSD, BTCV's
    ``training`` + ``validation``), else nnU-Net v2's ``labelsTr/CASE.ext`` with ``imagesTr/CASE_XXXX.ext``."""

    @property
    def root(self) -> Path:
        if self.dataset.get("root") is None:
            raise CTBenchError(f"dataset={self.dataset.get('name')} needs its folder: set dataset.root=PATH to an "
                               "MSD/nnU-Net folder (dataset.json, imagesTr/, labelsTr/)")
        return Path(str(self.dataset["root"]))

    @property
    def manifest(self) -> str:
        return str(self.dataset.get("manifest") or "dataset.json")

    def cases(self, check_files: bool = True) -> list[Case]:
        root, manifest = self.root, self.manifest
        require_folder(root, "an MSD/nnU-Net folder (dataset.json, imagesTr/, labelsTr/)")
        meta = read_manifest(root, manifest)
        msd_labels(root, manifest)  # region-based labels are refused before any file is listed
        ending = meta.get("file_ending", ".nii.gz")
        if not isinstance(ending, str) or not _FILE_ENDING.match(ending):
            raise CTBenchError(f"{root / manifest}: file_ending {str(ending)[:40]!r} is not a file ending: use one like "
                               "\".nii.gz\" (a dot, letters and digits, no path separators)")
        channels = channel_count(meta)
        lists: Sequence[str] = list(self.dataset.get("lists") or ["training"])
        entries = [e for key in lists for e in (meta.get(key) or []) if isinstance(e, Mapping) and "label" in e]
        cases = []
        if entries:  # MSD: explicit list (paths relative to root, image name without _0000)
            for entry in entries:
                image = inside(root, str(entry["image"]), manifest)
                label = inside(root, str(entry["label"]), manifest)
                suffixed = channel_files(image, ending, channels)
                first = suffixed if isinstance(suffixed, Path) else suffixed[0]
                # nnU-Net v2 lists carry the channel suffix on disk; MSD stores one file per case
                files = suffixed if not image.exists() and first.exists() else image
                cases.append({"case": label.name.removesuffix(ending), "image": _plain(files), "label": str(label)})
        else:  # nnU-Net v2: labelsTr/CASE.ext with imagesTr/CASE_XXXX.ext
            for label in sorted((root / "labelsTr").glob(f"*{ending}")):
                case = label.name.removesuffix(ending)
                files = channel_files(root / "imagesTr" / f"{case}{ending}", ending, channels)
                cases.append({"case": case, "image": _plain(files), "label": str(label)})
        if check_files:
            refuse_missing(cases, f"{manifest} in {root}")
        if not cases:
            raise CTBenchError(f"no training cases in {root}: {manifest} '{'/'.join(lists)}' is empty and labelsTr/ "
                               f"has no *{ending} files")
        return cases

    def case_phases(self) -> dict[str, str]:
        """The ``phase`` of each manifest entry that has one (the CT phantom records it), by case id."""
        meta = read_manifest(self.root, self.manifest)
        ending = meta.get("file_ending", ".nii.gz")
        lists: Sequence[str] = list(self.dataset.get("lists") or ["training"])
        return {Path(str(e["label"])).name.removesuffix(str(ending)): str(e["phase"])
                for key in lists for e in (meta.get(key) or [])
                if isinstance(e, Mapping) and "label" in e and isinstance(e.get("phase"), str)}

    def class_names(self) -> list[str]:
        root, manifest = self.root, self.manifest
        if not (root / manifest).is_file():
            require_folder(root, f"the dataset folder ({manifest}, imagesTr/, labelsTr/)")
            raise CTBenchError(f"dataset.class_names is null and {root} has no {manifest} to read them from: "
                               "point dataset.root at an MSD/nnU-Net folder or list the classes, e.g. "
                               "dataset.class_names=[background,liver]")
        labels = msd_labels(root, manifest)
        if sorted(labels) != list(range(len(labels))):
            raise CTBenchError(f"labels in {root / manifest} are not 0..N-1 ({sorted(labels)}): "
                               "set dataset.class_names explicitly")
        return [labels[i] for i in range(len(labels))]

    def declared_labels(self) -> dict[int, str] | None:
        if not (self.root / self.manifest).is_file():
            return None
        return msd_labels(self.root, self.manifest) or None

    def in_channels(self) -> int | None:
        if not (self.root / self.manifest).is_file():
            return None
        return channel_count(read_manifest(self.root, self.manifest))


def _plain(files: Path | list[Path]) -> str | list[str]:
    return str(files) if isinstance(files, Path) else [str(f) for f in files]


class SyntheticReader(MSDReader):
    """The CT phantom (:func:`ctbench.data.synthetic.ensure_dataset`), generated on first use in MSD layout."""

    def cases(self, check_files: bool = True) -> list[Case]:
        from ctbench.data.synthetic import PhantomSpec, ensure_dataset

        spec = self.dataset["phantom"]
        if self.dataset.get("keep_existing") and Path(self.dataset["root"]).exists():
            return super().cases(check_files)  # eval: read what is there, never rewrite it
        ensure_dataset(self.dataset["root"], PhantomSpec(cases=spec["cases"], seed=spec["seed"],
                                                         voxel_mm=tuple(spec["voxel_mm"]), noise_hu=spec["noise_hu"]))
        return super().cases(check_files)


class PhantomReader(MSDReader):
    """The CT-realistic phantom (:func:`ctbench.data.phantom.ensure_dataset`), generated on first use in MSD layout."""

    def cases(self, check_files: bool = True) -> list[Case]:
        from ctbench.data.phantom import PhantomSpec, ensure_dataset

        if not (self.dataset.get("keep_existing") and Path(self.dataset["root"]).exists()):  # eval never rewrites it
            ensure_dataset(self.dataset["root"], PhantomSpec.from_config(self.dataset["phantom"]))
        return super().cases(check_files)
