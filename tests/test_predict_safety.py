"""``ctbench predict`` never destroys an input or an earlier output, and refuses non-finite images (issue 12
rows 2 and 6), through the real CLI: one line on stderr, non-zero exit, nothing written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cli_helpers import ctbench


def one_line_error(proc, *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ctbench: error: "), proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def tiny_ct(path: Path, data: np.ndarray | None = None) -> Path:
    """A real 24^3 NIfTI at 10 mm: air around a soft-tissue block (the tiny phantom's spacing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.full((24, 24, 24), -1000, np.int16)
        data[4:20, 4:20, 4:20] = 40
    nib.save(nib.Nifti1Image(data, np.diag([10.0, 10.0, 10.0, 1.0])), str(path))
    return path


def predict(ckpt: Path, cwd: Path, *args: str):
    return ctbench("predict", f"ckpt_path={ckpt}", "progress_bar=false", *args, cwd=cwd, check=False)


def test_output_folder_holding_an_input_is_refused_and_the_input_kept(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    folder = tmp_path / "cts"
    tiny_ct(folder / "a.nii.gz")
    before = digest(folder)
    one_line_error(predict(ckpt, tmp_path, f"input={folder}", f"output_dir={folder}"), "holds the input",
                   "predict into another folder")
    one_line_error(predict(ckpt, tmp_path, f"input={folder / 'a.nii.gz'}", f"output_dir={folder}"), "holds the input")
    assert digest(folder) == before


def test_inputs_that_map_to_one_output_are_listed_in_pairs(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    folder = tmp_path / "cts"
    for name in ("x.nii", "x.nii.gz", "y_0000.nii.gz", "y.nii.gz", "z.nii.gz"):
        tiny_ct(folder / name)
    line = one_line_error(predict(ckpt, tmp_path, f"input={folder}", f"output_dir={tmp_path / 'out'}"),
                          "inputs that would write one output")
    assert "x.nii & x.nii.gz -> x.nii.gz" in line and "y.nii.gz & y_0000.nii.gz -> y.nii.gz" in line
    assert "z.nii" not in line and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_existing_outputs_are_kept_unless_overwrite_and_nnunet_names_are_read(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    folder, out = tmp_path / "cts", tmp_path / "masks"
    tiny_ct(folder / "case7_0000.nii.gz")  # nnU-Net's channel-0 naming: the mask is case7.nii.gz
    assert predict(ckpt, tmp_path, f"input={folder}", f"output_dir={out}").returncode == 0
    mask = out / "case7.nii.gz"
    assert sorted(p.name for p in out.iterdir()) == ["case7.nii.gz"]
    mask.write_bytes(b"an earlier result")
    one_line_error(predict(ckpt, tmp_path, f"input={folder}", f"output_dir={out}"), "already holds case7.nii.gz",
                   "overwrite=true")
    assert mask.read_bytes() == b"an earlier result"
    assert predict(ckpt, tmp_path, f"input={folder}", f"output_dir={out}", "overwrite=true").returncode == 0
    assert nib.load(mask).shape == (24, 24, 24)


def test_nan_or_inf_voxels_are_refused_naming_the_count(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    data = np.full((24, 24, 24), -1000.0, np.float32)
    data[4:20, 4:20, 4:20] = 40.0
    data[10, 10, 10], data[11, 10, 10] = np.nan, np.inf
    image = tiny_ct(tmp_path / "cts" / "holes.nii.gz", data)
    one_line_error(predict(ckpt, tmp_path, f"input={image}", f"output_dir={tmp_path / 'out'}"),
                   "holds 2 NaN/Inf voxel(s)", "replace them")
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True
