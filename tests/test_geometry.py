"""Geometry: the phantom's LPS/RAS storage and the mapping of predictions back to the input grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch

from ctbench.data.phantom_files import to_lps_storage
from ctbench.data.synthetic import PhantomSpec, make_case, write_dataset
from ctbench.engine.inference import to_original_grid


def _world_centroid(label: np.ndarray, affine: np.ndarray, value: int) -> np.ndarray:
    idx = np.argwhere(label == value).mean(axis=0)
    return affine[:3, :3] @ idx + affine[:3, 3]


def test_lps_storage_keeps_world_coordinates():
    rng = np.random.default_rng(3)
    _, label, affine = make_case(rng, (9.0, 8.0, 10.0))
    lps_label, lps_affine = to_lps_storage(label, affine)
    assert nib.aff2axcodes(lps_affine) == ("L", "P", "S")
    for value in (1, 2, 3):
        np.testing.assert_allclose(_world_centroid(label, affine, value), _world_centroid(lps_label, lps_affine, value),
                                   atol=1e-6)
    # the liver is on the patient's right (+x in RAS), the spleen on the left
    assert _world_centroid(label, affine, 1)[0] > 0 > _world_centroid(label, affine, 2)[0]


def test_phantom_is_deterministic_and_in_hu(tmp_path):
    spec = PhantomSpec(cases=2, seed=7, voxel_mm=(9.0, 10.0))
    write_dataset(tmp_path / "a", spec)
    write_dataset(tmp_path / "b", spec)
    for sub in ("imagesTr/phantom_000.nii.gz", "labelsTr/phantom_001.nii.gz"):
        a, b = nib.load(tmp_path / "a" / sub), nib.load(tmp_path / "b" / sub)
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    image = np.asarray(nib.load(tmp_path / "a/imagesTr/phantom_000.nii.gz").dataobj)
    label = np.asarray(nib.load(tmp_path / "a/labelsTr/phantom_000.nii.gz").dataobj)
    assert image.min() < -900  # air
    assert 60 < image[label == 1].mean() < 130  # liver, contrast phase
    assert set(np.unique(label)) <= {0, 1, 2, 3, 4}


def test_to_original_grid_inverts_flip_and_resampling():
    # original: 6x4x4 voxels of 2 mm, LPS-stored; "preprocessed": RAS, 1 mm (2x upsampled)
    original = np.zeros((6, 4, 4), dtype=np.int64)
    original[1:3, 1:3, 1:3] = 1
    orig_affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    orig_affine[:3, 3] = [10.0, 6.0, 0.0]
    # the same label on the RAS 1 mm grid covering the same world box
    ras_affine = np.diag([1.0, 1.0, 1.0, 1.0])
    ras_affine[:3, 3] = [0.0, 0.0, 0.0]
    world_to_orig = np.linalg.inv(orig_affine)
    shape = (12, 8, 8)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    world = ijk @ ras_affine[:3, :3].T + ras_affine[:3, 3]
    src = np.rint(world @ world_to_orig[:3, :3].T + world_to_orig[:3, 3]).astype(int)
    inside = np.all((src >= 0) & (src < np.array(original.shape)), axis=1)
    ras = np.zeros(len(ijk), dtype=np.int64)
    ras[inside] = original[tuple(src[inside].T)]
    ras = ras.reshape(shape)
    probs = torch.nn.functional.one_hot(torch.as_tensor(ras), 2).permute(3, 0, 1, 2).float()
    back = to_original_grid(probs, torch.as_tensor(ras_affine), orig_affine, original.shape)
    assert back.shape == original.shape
    assert (back == original).mean() > 0.95
    assert back[1:3, 1:3, 1:3].all()
