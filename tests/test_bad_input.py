"""Bad input, tried for real through the `ctbench` command: one clear line, a non-zero exit, and no
run folder that looks complete. The table of inputs and messages is docs/bad-input.md."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from cli_helpers import TINY, ctbench


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _msd(root: Path, cases: int = 4) -> Path:
    """A valid 4-case MSD folder of 24^3 volumes (liver blob in soft tissue)."""
    rng = np.random.default_rng(0)
    training = []
    for i in range(cases):
        image = (rng.normal(40, 10, (24, 24, 24))).astype(np.int16)
        label = np.zeros((24, 24, 24), np.uint8)
        label[6:14, 6:14, 6:14] = 1
        _nifti(root / "imagesTr" / f"c{i}.nii.gz", image, np.diag([10, 10, 10, 1.0]))
        _nifti(root / "labelsTr" / f"c{i}.nii.gz", label, np.diag([10, 10, 10, 1.0]))
        training.append({"image": f"./imagesTr/c{i}.nii.gz", "label": f"./labelsTr/c{i}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "liver"}, "training": training}))
    return root


def _train_msd(root: Path, cwd: Path):
    return ctbench("train", *TINY, "dataset=msd", f"dataset.root={root}", "dataset.test_cases=1",
                   "dataset.preprocessing.spacing=[10,10,10]", "dataset.phantom.cases=4", "trainer.max_epochs=1",
                   f"hydra.run.dir={cwd / 'run'}", cwd=cwd, check=False)


def _one_line_error(proc, *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ctbench: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _no_complete_run(cwd: Path) -> None:
    for summary in cwd.rglob("report/summary.json"):
        assert json.loads(summary.read_text())["status"] != "complete"


def _image(root: Path, i: int) -> Path:
    return root / "imagesTr" / f"c{i}.nii.gz"


def _label(root: Path, i: int) -> Path:
    return root / "labelsTr" / f"c{i}.nii.gz"


SPACING = np.diag([10, 10, 10, 1.0])

#: case index -> (how it is broken, a word the problem table must show for it)
BREAKERS = {
    1: (lambda r: _image(r, 1).write_bytes(b""), "empty file"),
    2: (lambda r: _image(r, 2).write_bytes(_image(r, 2).read_bytes()[:300]), "unreadable"),
    3: (lambda r: _nifti(_image(r, 3), np.zeros((24, 24, 24, 2), np.int16), SPACING), "4D image"),
    4: (lambda r: _nifti(_label(r, 4), np.full((24, 24, 24), 0.5, np.float32), SPACING), "non-integer"),
    5: (lambda r: _nifti(_label(r, 5), np.zeros((24, 24, 24), np.uint8), np.diag([12, 10, 10, 1.0])), "geometry differ"),
    6: (lambda r: _nifti(_image(r, 6), np.full((24, 24, 24), 7, np.int16), SPACING), "one single value (7)"),
    7: (lambda r: _nifti(_image(r, 7), np.where(np.eye(24, dtype=bool)[..., None], np.nan, 1.0).astype(np.float32)
                         * np.ones((24, 24, 24), np.float32), SPACING), "576 NaN voxel"),
    8: (lambda r: _nifti(_label(r, 8), np.full((24, 24, 24), 3, np.uint8), SPACING), "not declared"),
    9: (lambda r: _image(r, 9).unlink(), "c9.nii.gz"),  # dataset.json lists a file that is not there
}


def test_every_broken_case_stops_training_before_it_starts(tmp_path):
    """Zero-byte, truncated and 4D images, float and undeclared labels, mismatched geometry, a constant
    image, NaN voxels and a missing file: all listed at once, then one line, nothing trained."""
    root = _msd(tmp_path / "Task", cases=12)
    for breaker, _ in BREAKERS.values():
        breaker(root)
    proc = _train_msd(root, tmp_path)
    _one_line_error(proc, f"problem(s) in {len(BREAKERS)} case(s)", "ctbench check-data")
    for case, (_, word) in BREAKERS.items():
        row = next((line for line in proc.stderr.splitlines() if f" c{case} " in line and word in line), None)
        assert row, f"c{case}: {word}"  # each case's row names its problem
    assert not (tmp_path / "run" / "checkpoints").exists()
    _no_complete_run(tmp_path)


def test_unknown_override_key(tmp_path):
    proc = ctbench("train", "trainer.max_epoch=3", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "max_epoch" in proc.stderr


@pytest.mark.slow
def test_checkpoint_of_the_same_model_is_evaluated(trained_run, workdir):
    proc = ctbench("eval", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", "progress_bar=false",
                   "model=unet", "debug=fast", cwd=workdir, check=False)
    assert proc.returncode == 0  # same model: fine


def test_checkpoint_from_another_model(trained_run, workdir):
    bad = workdir / "other_model.ckpt"
    ckpt = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["cfg"]["model"]["channels"] = [8, 16, 32, 64]  # config of another model
    torch.save(ckpt, bad)
    _one_line_error(ctbench("eval", f"ckpt_path={bad}", "progress_bar=false", cwd=workdir, check=False),
                    "do not fit model")


def test_not_a_ctbench_checkpoint(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    _one_line_error(ctbench("eval", f"ckpt_path={path}", cwd=tmp_path, check=False), "not written by ctbench")


def test_predict_on_4d_and_corrupt_input(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    four_d = _nifti(tmp_path / "in" / "x.nii.gz", np.zeros((8, 8, 8, 3), np.int16))
    _one_line_error(ctbench("predict", f"ckpt_path={ckpt}", f"input={four_d}", f"output_dir={tmp_path / 'o'}",
                            "progress_bar=false", cwd=tmp_path, check=False), "needs a 3D volume")
    corrupt = tmp_path / "in2" / "y.nii.gz"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"\x1f\x8b garbage")
    _one_line_error(ctbench("predict", f"ckpt_path={ckpt}", f"input={corrupt}", f"output_dir={tmp_path / 'o2'}",
                            "progress_bar=false", cwd=tmp_path, check=False), "cannot read")
    assert not list((tmp_path / "o2").glob("*.nii.gz")) if (tmp_path / "o2").exists() else True


def test_random_bytes_named_dcm(tmp_path):
    folder = tmp_path / "dicom"
    folder.mkdir()
    (folder / "slice.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    proc = ctbench("convert", str(folder), str(tmp_path / "out"), cwd=tmp_path, check=False)
    _one_line_error(proc)


@pytest.mark.slow
def test_non_finite_loss_stops_with_step_and_checkpoint(tmp_path):
    proc = ctbench("train", *TINY, "optim=sgd_poly", "optim.optimizer.lr=1e30", f"hydra.run.dir={tmp_path / 'run'}",
                   cwd=tmp_path, check=False)
    line = _one_line_error(proc, "at step", "last good checkpoint", "nonfinite=skip")
    assert "became" in line
    _no_complete_run(tmp_path)


def test_voxel_cap_stops_training_before_any_voxel_is_resampled(tmp_path):
    """Issue 12 row 12: the cap is read from each header (24^3 = 13824 voxels here, 4 cases x image and label)."""
    root = _msd(tmp_path / "Task", cases=4)
    proc = ctbench("train", *TINY, "dataset=msd", f"dataset.root={root}", "dataset.test_cases=1",
                   "dataset.preprocessing.spacing=[10,10,10]", "dataset.max_voxels=13823", "trainer.max_epochs=1",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    _one_line_error(proc, "8 problem(s) in 4 case(s)")
    assert "shape 24 x 24 x 24 at spacing 10 x 10 x 10 mm is 1.38e+04 voxels" in proc.stderr
    assert "dataset.max_voxels=N" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_predict_refuses_a_header_over_the_voxel_cap(trained_run, tmp_path):
    """A 16^3 header with 1000 mm voxels would be 1600^3 voxels at the run's 10 mm spacing: refused from the
    header, before resampling; ``dataset.max_voxels`` on the predict command line sets the cap."""
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    huge = _nifti(tmp_path / "in" / "huge.nii.gz", np.zeros((16, 16, 16), np.int16), np.diag([1000.0, 1000, 1000, 1]))
    line = _one_line_error(ctbench("predict", f"ckpt_path={ckpt}", f"input={huge}", f"output_dir={tmp_path / 'o'}",
                                   "progress_bar=false", cwd=tmp_path, check=False),
                           "huge.nii.gz: shape 16 x 16 x 16 at spacing 1000 x 1000 x 1000 mm",
                           "4.1e+09 at the target spacing 10 x 10 x 10 mm", "dataset.max_voxels=N")
    assert "over the cap of 1e+09" in line
    small = _nifti(tmp_path / "in2" / "small.nii.gz", np.zeros((16, 16, 16), np.int16), np.diag([10.0, 10, 10, 1]))
    _one_line_error(ctbench("predict", f"ckpt_path={ckpt}", f"input={small}", f"output_dir={tmp_path / 'o2'}",
                            "dataset.max_voxels=4095", "progress_bar=false", cwd=tmp_path, check=False),
                    "is 4.1e+03 voxels", "over the cap of 4.1e+03")
    assert not list(tmp_path.glob("o*/*.nii.gz"))


def test_unbounded_epochs_without_max_steps_is_one_line(tmp_path):
    # Lightning accepts max_epochs=-1; the per-step LR schedule cannot span an infinite run
    proc = ctbench("train", *TINY, "trainer.max_epochs=-1", "hydra.run.dir=run", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("ctbench: error: trainer.max_epochs=-1 without trainer.max_steps") and "max_time" in line
