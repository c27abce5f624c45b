"""The command line: fast help, one-line errors with the right exit codes, `ctbench list`."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np

from cli_helpers import ctbench


def test_help_does_not_import_torch():
    code = ("import sys; from ctbench.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, 'heavy import'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "loss-curves" in proc.stdout


def test_unknown_model_is_one_line_exit_2(tmp_path):
    proc = ctbench("train", "model=unetx", cwd=tmp_path, check=False, separate_process=True)  # console script
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and "unknown model 'unetx'" in lines[0] and "unet" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()  # nothing half-written


def test_unknown_loss_in_sweep_fails_before_any_job(tmp_path):
    proc = ctbench("train", "-m", "loss=dice,dicex", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "unknown loss 'dicex'" in proc.stderr
    assert not (tmp_path / "multirun").exists()


def test_out_of_range_dims(tmp_path):
    proc = ctbench("train", "dims=4", "debug=fast", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "dims=4 is not supported" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("summary.json"))


def test_negative_epochs(tmp_path):
    proc = ctbench("train", "trainer.max_epochs=-3", "debug=fast", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "max_epochs=-3" in proc.stderr


def test_missing_msd_folder(tmp_path):
    proc = ctbench("train", "dataset=msd", f"dataset.root={tmp_path / 'nope'}", "trainer.max_epochs=1",
                   cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert f"dataset.root={tmp_path / 'nope'} is not a folder" in proc.stderr and "Traceback" not in proc.stderr


def test_msd_folder_without_dataset_json(tmp_path):
    (tmp_path / "Task99").mkdir()
    proc = ctbench("train", "dataset=msd", f"dataset.root={tmp_path / 'Task99'}", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "has no dataset.json" in proc.stderr


def test_list_reads_config_folders(tmp_path):
    proc = ctbench("list", "models", cwd=tmp_path)
    assert "unet" in proc.stdout and "Ronneberger" in proc.stdout
    proc = ctbench("list", "losses", cwd=tmp_path)
    for name in ("ce", "dice", "dice_ce"):
        assert name in proc.stdout
    proc = ctbench("list", "bogus", cwd=tmp_path, check=False)
    assert proc.returncode == 2


def test_cfg_job_prints_composed_config(tmp_path):
    proc = ctbench("train", "model=unet", "loss=dice", "dims=2", "--cfg", "job", cwd=tmp_path)
    assert "dims: 2" in proc.stdout and "ctbench.losses" in proc.stdout


def test_synth_writes_an_msd_folder_of_matching_image_label_pairs(tmp_path):
    ctbench("synth", str(tmp_path / "ds"), "--cases", "2", "--voxel-mm", "9", "11", cwd=tmp_path)
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert len(manifest["training"]) == 2 and manifest["labels"]["1"] == "liver"
    for case in manifest["training"]:
        image, label = (nib.load(tmp_path / "ds" / case[key]) for key in ("image", "label"))
        assert image.shape == label.shape and np.allclose(image.affine, label.affine)
        assert set(np.unique(np.asarray(label.dataobj))) <= {int(k) for k in manifest["labels"]}
        assert np.all(np.abs(np.diag(image.affine)[:3]) >= 9)
        assert np.asarray(image.dataobj).min() < -500  # Hounsfield units: air
