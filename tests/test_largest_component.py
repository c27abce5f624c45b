"""``postprocess=lcc`` without scikit-image (issue 25 item 1): the largest component per class, on scipy only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctbench.engine.postprocess import largest_component_per_class

from cli_helpers import CTBENCH, TINY, read_summary


def test_hand_case_keeps_the_largest_component_of_each_class() -> None:
    label = np.zeros((6, 8), np.uint8)
    label[0, 0:2] = 1          # class 1: 2 voxels
    label[3:5, 0:3] = 1        # class 1: 6 voxels, kept
    label[1, 5], label[2, 6] = 2, 2   # class 2: corner-connected pair (full connectivity): 2 voxels, kept
    label[5, 7] = 2            # class 2: 1 voxel
    expected = label.copy()
    expected[0, 0:2] = 0
    expected[5, 7] = 0
    np.testing.assert_array_equal(largest_component_per_class(label), expected)


def test_equals_monais_transform_in_3d() -> None:
    pytest.importorskip("skimage")  # MONAI's CPU path; ctbench itself does not need it
    import torch
    from monai.transforms import KeepLargestConnectedComponent

    label = np.random.default_rng(0).integers(0, 4, size=(12, 10, 9)).astype(np.uint8)
    label[np.random.default_rng(1).random(label.shape) < 0.6] = 0
    monai = KeepLargestConnectedComponent(applied_labels=[1, 2, 3], independent=True)(torch.as_tensor(label)[None])
    np.testing.assert_array_equal(largest_component_per_class(label), np.asarray(monai[0]))


def test_works_without_scikit_image(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)  # `import skimage` raises ImportError, as on a plain install
    label = np.zeros((5, 5, 5), np.uint8)
    label[0, 0, 0], label[2:4, 2:4, 2:4] = 1, 1
    assert largest_component_per_class(label).sum() == 8


@pytest.mark.slow
def test_train_and_predict_with_lcc_without_scikit_image(tmp_path: Path) -> None:
    """`ctbench train debug=fast postprocess=lcc` tests and reports, and predict writes a one-component mask,
    in processes where scikit-image cannot be imported."""
    blocker = tmp_path / "no_skimage" / "skimage"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('scikit-image is not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent), "OMP_NUM_THREADS": "2"}

    def ctbench(*args: str) -> None:
        proc = subprocess.run([CTBENCH, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

    assert subprocess.run([sys.executable, "-c", "import skimage"], env=env,
                          capture_output=True).returncode == 1
    run = tmp_path / "run"
    ctbench("train", *TINY, "trainer.max_epochs=1", "postprocess=lcc", f"hydra.run.dir={run}")
    assert read_summary(run)["status"] == "complete"
    image = next((tmp_path / "data" / "synthetic_tiny" / "imagesTr").glob("*.nii.gz"))
    out = tmp_path / "masks"
    ctbench("predict", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"input={image}", f"output_dir={out}",
            "postprocess=lcc", "progress_bar=false")
    mask = np.asarray(nib.load(next(out.glob("*.nii.gz"))).dataobj)
    np.testing.assert_array_equal(largest_component_per_class(mask), mask)
