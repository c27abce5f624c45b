"""``ctbench predict ckpt_path=[A,B] save_probabilities=true``: a fold ensemble averages the members'
softmax probabilities on the input's grid (issue 15), through the real CLI."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from cli_helpers import ctbench


def perturbed_checkpoint(source: Path, target: Path) -> Path:
    """A second real checkpoint of the same run config whose weights differ (a stand-in for another fold)."""
    ckpt = torch.load(source, weights_only=True, map_location="cpu")
    generator = torch.Generator().manual_seed(0)
    for key, value in ckpt["state_dict"].items():
        if key.startswith("model.") and value.is_floating_point():
            value.add_(0.05 * torch.randn(value.shape, generator=generator))
    torch.save(ckpt, target)
    return target


def predict(ckpt: str, image: Path, out: Path, cwd: Path) -> dict[str, np.ndarray]:
    ctbench("predict", f"ckpt_path={ckpt}", f"input={image}", f"output_dir={out}", "save_probabilities=true",
            "progress_bar=false", cwd=cwd)
    case = image.name.removesuffix(".nii.gz")
    with np.load(out / f"{case}.npz") as saved:
        arrays = {k: saved[k] for k in saved.files}
    arrays["label"] = np.asarray(nib.load(out / f"{case}.nii.gz").dataobj)
    return arrays


@pytest.mark.slow
def test_two_checkpoint_ensemble_is_the_mean_of_the_single_probabilities(trained_run, workdir, tmp_path):
    first = trained_run / "checkpoints" / "best.ckpt"
    second = perturbed_checkpoint(first, tmp_path / "fold1.ckpt")
    image = sorted((workdir / "data" / "synthetic_tiny" / "imagesTr").glob("*.nii.gz"))[0]
    a = predict(str(first), image, tmp_path / "a", tmp_path)
    b = predict(str(second), image, tmp_path / "b", tmp_path)
    both = predict(f"[{first},{second}]", image, tmp_path / "ab", tmp_path)
    source = nib.load(image)
    for saved in (a, b, both):
        assert saved["probabilities"].dtype == np.float32
        assert saved["probabilities"].shape == (5, *source.shape)  # [C, *input shape], the file's voxel order
        np.testing.assert_allclose(saved["affine"], source.affine, atol=1e-6)
        assert list(saved["class_names"]) == ["background", "liver", "spleen", "kidney", "lesion"]
    assert np.abs(a["probabilities"] - b["probabilities"]).max() > 0.05  # the members really differ
    mean = (a["probabilities"] + b["probabilities"]) / 2
    np.testing.assert_allclose(both["probabilities"], mean, rtol=0, atol=1e-6)
    # the mask is the arg-max of the saved probabilities (background where all are 0: outside the field of view)
    shifted = both["probabilities"].copy()
    shifted[0] += 1e-6
    assert np.array_equal(both["label"], shifted.argmax(0))
    assert not np.array_equal(both["label"], a["label"]) or not np.array_equal(both["label"], b["label"])
