"""``ctbench predict``: NIfTI file(s) or a DICOM folder in, NIfTI label maps out in each input's own
geometry (same shape, affine, spacing and orientation as the image file), readable in 3D Slicer.

Several checkpoints (``ckpt_path=[A,B]``, e.g. the folds of one config) form an ensemble: each member
preprocesses the input with its own run config, its softmax probabilities are resampled onto the input
file's grid, and the label map is the arg-max of their mean (nnU-Net averages its folds' softmax the same
way). ``save_probabilities=true`` writes ``CASE.npz`` beside each mask (nnU-Net's ``--save_probabilities``):
``probabilities`` float32 ``[C, *input shape]`` in the NIfTI file's voxel order (0 for every class outside
the field of view the network saw), ``affine`` (4x4, the file's), ``class_names``.

Inputs are never destroyed: an output folder that holds an input, two inputs that map to one output name
(``x.nii`` and ``x.nii.gz``, ``x_0000.nii.gz`` and ``x.nii.gz``) and existing outputs (unless
``overwrite=true``) are refused before anything is written. An image holding NaN or Inf voxels is refused.
"""

from __future__ import annotations

import gzip
import io
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from ctbench.atomic import atomic_write
from ctbench.engine.postprocess import largest_component_per_class, single_component_classes
from ctbench.errors import CTBenchError, describe

NIFTI_ENDINGS = (".nii", ".nii.gz")

#: nnU-Net's channel suffix: ``CASE_0000.nii.gz`` is channel 0 of case ``CASE``
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass
class Member:
    """One checkpoint of an ensemble: its network with its run's inference settings, its run config and the
    z-score statistics its training used (``normalize=zscore``)."""

    segmenter: Any  # ctbench.engine.segmenter.Segmenter
    cfg: DictConfig
    zscore: tuple[float, float] | None


def checkpoint_paths(ckpt_path: Any) -> list[str]:
    """``ckpt_path`` as a list: one path, or a list of them (an ensemble)."""
    if not ckpt_path:
        raise CTBenchError("no checkpoint given: pass ckpt_path=RUN_DIR/checkpoints/best.ckpt or ckpt_path=[A,B]")
    paths = [str(ckpt_path)] if isinstance(ckpt_path, str | Path) else [str(p) for p in ckpt_path]
    if len(set(paths)) != len(paths):
        raise CTBenchError(f"ckpt_path lists a checkpoint twice ({', '.join(paths)}): give each member once")
    return paths


def load_members(cfg: DictConfig, ctx: Any) -> list[Member]:
    """The ensemble of ``cfg.ckpt_path`` (one member per checkpoint); every member must predict the same classes."""
    from ctbench.engine.checkpoint import command_run_config, network_of
    from ctbench.engine.segmenter import Segmenter

    members = []
    for path in checkpoint_paths(cfg.get("ckpt_path")):
        run_cfg, ckpt = command_run_config(cfg, ctx, path)
        zscore = ckpt.get("ctbench_zscore")
        members.append(Member(Segmenter(network_of(run_cfg, ckpt, f"checkpoint {path}"), run_cfg), run_cfg,
                              tuple(zscore) if zscore else None))
    names = [list(m.cfg.dataset.class_names) for m in members]
    if any(n != names[0] for n in names[1:]):
        raise CTBenchError(f"the checkpoints predict different classes ({' vs '.join(map(str, names))}): "
                           "ensemble only checkpoints of one dataset")
    return members


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_ENDINGS))


def _dicom_to_nifti(folder: Path, scratch: Path, series_of: dict[Path, Any] | None = None,
                    refused: list[str] | None = None, force: bool = False) -> list[Path]:
    """Every CT series below ``folder`` as a NIfTI file in ``scratch`` (the converter's geometry);
    ``series_of`` (when given) receives each file's ``DicomSeries``, for a DICOM SEG. A series with missing
    slices, uneven spacing or another problem is left out and named in ``refused`` with its reason (raised at
    once when no list is given or no series is left); ``force`` predicts the forcible ones, as
    ``ctbench convert --force`` writes them."""
    from ctbench.data.dicom import output_stem, read_dicom_series, series_to_nifti

    series = [s for s in read_dicom_series(folder) if not s.skip_reason]
    if not series:
        raise CTBenchError(f"{folder} holds no NIfTI files and no CT DICOM series: "
                           "pass input=FILE.nii.gz, a folder of NIfTI files, or a DICOM folder")
    files, problems = [], []
    for index, s in enumerate(series):
        if not s.can_convert(force):
            blocking = "; ".join(p.message for p in s.problems if not (force and p.forcible))
            hint = " (force=true predicts it anyway)" if all(p.forcible for p in s.problems) and not force else ""
            problems.append(f"series {s.label}: {blocking}{hint}")
            continue
        path = scratch / f"{output_stem(s, index)}.nii.gz"
        series_to_nifti(s, force=force).to_filename(str(path))
        files.append(path)
        if series_of is not None:
            series_of[path] = s
    if problems and (refused is None or not files):
        raise CTBenchError(f"no series of {folder} can be predicted: {' | '.join(problems)}")
    (refused if refused is not None else []).extend(problems)
    return files


def resolve_inputs(path: Path, scratch: Path, series_of: dict[Path, Any] | None = None,
                   refused: list[str] | None = None, force: bool = False) -> list[Path]:
    """NIfTI files named by ``input``: one file, a folder of them, or DICOM converted to ``scratch`` (series that
    cannot be predicted go to ``refused``, see :func:`_dicom_to_nifti`)."""
    if not path.exists():
        raise CTBenchError(f"input {path} does not exist: pass a NIfTI file, a folder of NIfTI files or a DICOM folder")
    if path.is_file():
        if not path.name.endswith(NIFTI_ENDINGS):
            return _dicom_to_nifti(path.parent, scratch, series_of, refused, force)
        return [path]
    files = _nifti_files(path)
    return files or _dicom_to_nifti(path, scratch, series_of, refused, force)


def _stem(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".nii")


def group_cases(files: Sequence[Path], channels: int) -> dict[str, list[Path]]:
    """Case name -> its image files, channel 0 first. One channel: ``CASE.nii.gz`` or nnU-Net's
    ``CASE_0000.nii.gz`` (the suffix dropped); several: ``CASE_0000`` ... ``CASE_000N``, each required.
    Two files that would write one output are refused, naming every such pair."""
    cases: dict[str, dict[int, Path]] = {}
    clashes: list[str] = []
    for path in files:
        match = _CHANNEL.match(_stem(path))
        if channels > 1 and not match:
            raise CTBenchError(f"{path.name}: the model takes {channels} channels; name its files as nnU-Net does, "
                               f"CASE_0000.nii.gz ... CASE_{channels - 1:04d}.nii.gz")
        nnunet = match is not None and (channels > 1 or match["channel"] == "0000")
        case, channel = (match["case"], int(match["channel"])) if nnunet else (_stem(path), 0)
        seen = cases.setdefault(case, {})
        if channel in seen:
            clashes.append(f"{seen[channel].name} & {path.name} -> {case}.nii.gz")
        seen[channel] = path
    if clashes:
        raise CTBenchError(f"inputs that would write one output: {'; '.join(clashes)}; rename or move one of each pair")
    grouped = {}
    for case, by_channel in cases.items():
        if sorted(by_channel) != list(range(channels)):
            raise CTBenchError(f"case {case} has channels {sorted(by_channel)} but the model takes {channels} "
                               f"(CASE_0000 ... CASE_{channels - 1:04d}); add or remove files")
        grouped[case] = [by_channel[c] for c in range(channels)]
    return grouped


def planned_outputs(cases: Sequence[str], output_dir: Path, probabilities: bool) -> dict[str, list[Path]]:
    """Case -> the files predict writes for it: ``CASE.nii.gz`` (and ``CASE.npz``)."""
    endings = (".nii.gz", ".npz") if probabilities else (".nii.gz",)
    return {case: [output_dir / f"{case}{ending}" for ending in endings] for case in cases}


def dicom_inputs(source: Path, series_of: dict[Path, Any]) -> list[Path]:
    """What predict read as DICOM: every file of a converted series and the folder searched for series (the
    input folder, or a DICOM file's own folder, read whole); empty for NIfTI input."""
    if not series_of:
        return []
    return [f for s in series_of.values() for f in s.files] + [source if source.is_dir() else source.parent]


def refuse_destructive(source: Path, inputs: Sequence[Path], outputs: dict[str, list[Path]], output_dir: Path,
                       overwrite: bool, dicom: Sequence[Path] = ()) -> None:
    """Stop before writing when the output folder holds an input (a NIfTI file, or a DICOM file or folder:
    ``dicom`` from :func:`dicom_inputs`), lies inside a DICOM input folder (read recursively, it would mix
    outputs with the series), or outputs exist and ``overwrite`` is off."""
    out = output_dir.resolve()
    sources = [source.resolve()] if source.is_dir() else []
    nifti = [] if dicom else list(inputs)  # DICOM input: ``inputs`` are this command's own converted files
    holds = [p for p in [*nifti, *dicom, *sources] if p.resolve() == out or out in p.resolve().parents]
    if holds:
        raise CTBenchError(f"output_dir {output_dir} holds the input {holds[0]}: predict into another folder "
                           "(inputs are never overwritten)")
    inside = [p for p in dicom if p.is_dir() and p.resolve() in out.parents]
    if inside:
        raise CTBenchError(f"output_dir {output_dir} is inside the DICOM input folder {inside[0]}: predict into a "
                           "folder outside it (DICOM folders are read with their subfolders)")
    existing = [p.name for files in outputs.values() for p in files if p.exists()]
    if existing and not overwrite:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise CTBenchError(f"{output_dir} already holds {shown}: add overwrite=true to replace them or choose "
                           "another output_dir")


def read_input(paths: Sequence[Path]) -> Any:
    """The ``nibabel`` image of channel 0 (whose grid the outputs take), after checking every channel: a 3D
    volume without NaN or Inf voxels."""
    import nibabel as nib

    images = []
    for path in paths:
        try:
            image = nib.load(str(path))
            data = np.asanyarray(image.dataobj)
        except Exception as err:  # nibabel raises several types for bad files
            raise CTBenchError(f"cannot read {path}: {describe(err)[:160]}") from err
        if data.ndim != 3:
            raise CTBenchError(f"{path} has shape {data.shape}: predict needs a 3D volume (split 4D series into 3D "
                               "files)")
        if np.issubdtype(data.dtype, np.floating):
            bad = int(np.count_nonzero(~np.isfinite(data)))
            if bad:
                raise CTBenchError(f"{path} holds {bad} NaN/Inf voxel(s): predict cannot segment them; replace them "
                                   "(e.g. with -1024 HU, air) and run again")
        images.append(image)
    return images[0]


def ensemble_probabilities(members: Sequence[Member], paths: Sequence[Path], original: Any) -> torch.Tensor:
    """Mean of the members' softmax probabilities on the input file's grid, ``[C, *input shape]``."""
    from ctbench.data.transforms import eval_chain
    from ctbench.engine.inference import probs_on_original_grid

    image_key: Any = str(paths[0]) if len(paths) == 1 else [str(p) for p in paths]
    total = torch.zeros(())
    for index, member in enumerate(members):
        item = eval_chain(member.cfg.dataset.preprocessing, with_label=False, zscore=member.zscore)({"image": image_key})
        image = item["image"]
        probs = member.segmenter.probs(image[None].to(member.segmenter.device))[0]
        on_grid = probs_on_original_grid(probs.cpu(), image.affine, original.affine, original.shape)
        total = on_grid if index == 0 else total.add_(on_grid)
    return total.div_(len(members)) if len(members) > 1 else total


def save_label(label: np.ndarray, original, path: Path) -> None:
    """Write ``label`` as uint8 NIfTI with a fresh header holding the input's geometry only (qform and sform
    with their codes, millimetres): no text field (``descrip``, ``aux_file``, ``intent_name``, ``db_name``) and
    no header extension of the input is copied, since those may hold identifiers."""
    import nibabel as nib

    out = nib.Nifti1Image(label.astype(np.uint8), original.affine)
    out.header.set_xyzt_units("mm", "sec")
    out.set_qform(original.get_qform(), code=int(original.header["qform_code"]))
    out.set_sform(original.get_sform(), code=int(original.header["sform_code"]))
    data = out.to_bytes()
    atomic_write(path, lambda fh: fh.write(gzip.compress(data, compresslevel=1) if path.name.endswith(".gz") else data))


def save_probabilities(probs: torch.Tensor, original, class_names: Sequence[str], path: Path) -> None:
    """``CASE.npz`` (compressed): ``probabilities`` float32 ``[C, *input shape]``, ``affine``, ``class_names``."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, probabilities=probs.numpy().astype(np.float32, copy=False),
                        affine=np.asarray(original.affine, dtype=np.float64), class_names=np.asarray(class_names))
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))


def predict_inputs(members: Sequence[Member], source: Path, output_dir: Path, cfg: DictConfig) -> list[Path]:
    """Predict every input with the ensemble ``members`` and write ``output_dir/CASE.nii.gz`` (``CASE.npz`` with
    ``save_probabilities=true``); prints one table row per case. Returns the label maps written."""
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from ctbench.data.voxel_budget import check_voxel_budget

    run_cfg = members[0].cfg
    names = list(run_cfg.dataset.class_names)
    channels = int(run_cfg.dataset.get("in_channels", 1))
    with_probs = bool(cfg.get("save_probabilities", False))
    lcc = single_component_classes(run_cfg.dataset) if (bool(cfg.get("largest_component"))
                                                         or run_cfg.get("postprocess") == "lcc") else []
    table = Table(title=f"ctbench predict -> {output_dir}" + (f" ({len(members)}-checkpoint ensemble)"
                                                              if len(members) > 1 else ""))
    written: list[Path] = []
    refused: list[str] = []  # inputs left out, each with its reason: the others are predicted, the exit is 1
    with tempfile.TemporaryDirectory(prefix="ctbench-dicom-") as scratch:
        series_of: dict[Path, Any] = {}
        inputs = resolve_inputs(source, Path(scratch), series_of, refused, bool(cfg.get("force", False)))
        cases = group_cases(inputs, channels)
        # nothing is cut with "…" in an 80-column terminal: a long case name folds onto a second line
        table.caption = "s: seconds; class volumes in ml"
        table.add_column("case", overflow="fold")
        for column in ("shape", "s", *names[1:]):
            table.add_column(column, justify="right", no_wrap=True)
        outputs = planned_outputs(list(cases), output_dir, with_probs)
        seg = str(cfg.get("output_format") or "nifti")
        if seg not in ("nifti", "dicom-seg") or (seg == "dicom-seg" and len(series_of) != len(inputs)):
            raise CTBenchError(f"output_format={seg}: use nifti, or dicom-seg with a DICOM folder as input={source}")
        if seg == "dicom-seg":  # CASE.dcm beside CASE.nii.gz, refused like it when it exists; sources checked first
            from ctbench.data.dicom.seg import dicom_seg, seg_sources, write_dicom_seg

            for case, files in list(outputs.items()):
                try:
                    seg_sources(series_of[cases[case][0]])  # a series a SEG cannot reference is left out
                except CTBenchError as err:
                    if len(outputs) == 1:
                        raise
                    refused.append(str(err))
                    del outputs[case], cases[case]
                    continue
                files.append(output_dir / f"{case}.dcm")
        refuse_destructive(source, inputs, outputs, output_dir, bool(cfg.get("overwrite", False)),
                           dicom_inputs(source, series_of))
        output_dir.mkdir(parents=True, exist_ok=True)
        for case, paths in track(list(cases.items()), description="Predicting", transient=True):
            start = time.perf_counter()
            try:
                for member, path in ((m, p) for m in members for p in paths):  # headers, before any voxel is read
                    check_voxel_budget(path, member.cfg.dataset.preprocessing.spacing,
                                       member.cfg.dataset.get("max_voxels"))
                original = read_input(paths)
                probs = ensemble_probabilities(members, paths, original)
                label = label_map_of(probs if not with_probs else probs.clone(), lcc)
                seg_file = None  # built before any file of the case is written: a failure leaves none behind
                if seg == "dicom-seg":
                    model = str((run_cfg.get("names") or {}).get("model", run_cfg.model._target_.split(".")[-1]))
                    seg_file = dicom_seg(label, series_of[paths[0]], names, model)
            except CTBenchError as err:
                if len(cases) == 1 and not refused:
                    raise
                refused.append(f"{case}: {err}")
                continue
            if with_probs:
                save_probabilities(probs, original, names, outputs[case][1])
            save_label(label, original, outputs[case][0])
            if seg_file is not None:
                write_dicom_seg(outputs[case][-1], seg_file)
            written.append(outputs[case][0])
            spacing = np.prod(original.header.get_zooms()[:3]) / 1000.0
            table.add_row(case, "x".join(map(str, label.shape)), f"{time.perf_counter() - start:.1f}",
                          *[f"{(label == c).sum() * spacing:.1f}" for c in range(1, len(names))])
    Console().print(table)
    if refused:
        raise CTBenchError(f"{len(refused)} input(s) not predicted, {len(written)} written to {output_dir}: "
                           + " | ".join(refused))
    return written


def label_map_of(probs: torch.Tensor, largest_component: Sequence[int]) -> np.ndarray:
    """The arg-max label map (``probs`` is consumed), with only the largest component kept of each class of
    ``largest_component`` (label values; none: as predicted)."""
    from ctbench.engine.inference import label_map

    label = label_map(probs)
    return largest_component_per_class(label, largest_component) if largest_component else label
