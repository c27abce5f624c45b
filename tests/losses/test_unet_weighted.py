from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from ctbench.data.weight_maps import border_map, class_balance_map, unet_weight_map
from ctbench.errors import CTBenchError
from ctbench.losses.cross_entropy import voxel_cross_entropy
from ctbench.losses.unet_weighted import UNetWeightedCrossEntropyLoss


def _border_brute_force(label, w0, sigma, border_on="background"):
    """Exhaustive d1, d2 over all voxel pairs (tiny images only), objects = 4/6-connected components; with
    ``other_objects`` on every voxel, to the objects that do not contain it."""
    from scipy import ndimage

    objects = []
    for value in np.unique(label[label > 0]):
        comp, n = ndimage.label(label == value)
        objects += [np.argwhere(comp == k) for k in range(1, n + 1)]
    out = np.zeros(label.shape)
    if len(objects) < 2:
        return out
    for x in np.argwhere(label == 0) if border_on == "background" else np.argwhere(np.ones_like(label)):
        d = sorted(np.sqrt(((pts - x) ** 2).sum(1)).min() for pts in objects if not (pts == x).all(1).any())
        if len(d) >= 2:
            out[tuple(x)] = w0 * np.exp(-((d[0] + d[1]) ** 2) / (2 * sigma**2))
    return out


def test_border_two_objects_by_hand():
    # 1 x 7 row: objects at 0 and 6; the voxel at 3 is 3 from each -> w0 exp(-36 / (2 σ²))
    label = np.array([[1, 0, 0, 0, 0, 0, 1]])
    out = border_map(label, w0=10.0, sigma=5.0)
    assert out[0, 3] == pytest.approx(10 * np.exp(-36 / 50), rel=1e-6)
    assert out[0, 1] == pytest.approx(10 * np.exp(-36 / 50), rel=1e-6)  # 1 + 5 = 6 as well
    assert out[0, 0] == 0 and out[0, 6] == 0


@pytest.mark.parametrize("border_on", ["background", "other_objects"])
@pytest.mark.parametrize("shape", [(12, 12), (6, 7, 8)], ids=["2d", "3d"])
def test_border_matches_brute_force(shape, border_on):
    rng = np.random.default_rng(0)
    label = (rng.random(shape) < 0.08).astype(np.int64) * rng.integers(1, 3, shape)
    expected = _border_brute_force(label, 10.0, 2.0, border_on)
    # terms below w0/1000 are cut off by design
    np.testing.assert_allclose(border_map(label, 10.0, 2.0, border_on), expected, atol=10.0 / 1000 + 1e-6)


def test_border_between_two_lesions_inside_an_organ():
    """Two lesions (2) in a liver (1), one liver column apart: the paper's background-only term is 0 there;
    ``other_objects`` gives the gap voxel w0 exp(-(1 + 1)^2 / 2σ²) and a lesion voxel facing it
    w0 exp(-(1 + 2)^2 / 2σ²) (1 to the liver, 2 to the other lesion), the liver's corner its two distances."""
    label = np.ones((9, 11), dtype=np.int64)
    label[3:6, 2:5] = 2
    label[3:6, 6:9] = 2
    assert not border_map(label, 10.0, 5.0).any()
    other = border_map(label, 10.0, 5.0, "other_objects")
    assert other[4, 5] == pytest.approx(10 * np.exp(-4 / 50), rel=1e-6)
    assert other[4, 4] == pytest.approx(10 * np.exp(-9 / 50), rel=1e-6)
    corner = (np.sqrt(3**2 + 2**2) + np.sqrt(3**2 + 6**2)) ** 2  # (0, 0) to the two lesions' nearest voxels
    assert other[0, 0] == pytest.approx(10 * np.exp(-corner / 50), rel=1e-6)
    with pytest.raises(ValueError, match="border_on='gaps'"):
        border_map(label, border_on="gaps")
    with pytest.raises(CTBenchError, match="border_on='gaps'.*other_objects"):
        UNetWeightedCrossEntropyLoss(border_on="gaps")


def test_touching_classes_are_separate_objects():
    label = np.zeros((1, 5), dtype=np.int64)
    label[0, 0], label[0, 1] = 1, 2
    assert border_map(label)[0, 2] == pytest.approx(10 * np.exp(-((1 + 2) ** 2) / 50), rel=1e-6)


def test_single_object_has_no_border_term():
    label = np.zeros((8, 8), dtype=np.int64)
    label[2:5, 2:5] = 1
    assert not border_map(label).any()


def test_class_balance_mean_one_and_inverse_frequency():
    label = np.zeros((4, 4), dtype=np.int64)
    label[0, :2] = 1  # 2 of 16
    w = class_balance_map(label)
    assert w.mean() == pytest.approx(1.0)
    assert w[0, 0] == pytest.approx(16 / (2 * 2)) and w[3, 3] == pytest.approx(16 / (2 * 14))


def test_weight_map_per_slice_stacks_2d_maps():
    rng = np.random.default_rng(1)
    label = (rng.random((10, 10, 3)) < 0.1).astype(np.int64)
    per_slice = unet_weight_map(label, sigma=2.0, class_balance=False, per_slice=True)
    for k in range(3):
        np.testing.assert_allclose(per_slice[..., k], 1 + border_map(label[..., k], 10.0, 2.0))
    assert per_slice.dtype == np.float32 and per_slice.shape == label.shape


def test_weight_map_is_fast_enough():
    # a 96 x 96 x 48 volume with 30 small lesions in well under a few seconds
    rng = np.random.default_rng(2)
    label = np.zeros((96, 96, 48), dtype=np.int64)
    for c in rng.integers(4, 44, (30, 3)):
        label[c[0] * 2 : c[0] * 2 + 3, c[1] * 2 : c[1] * 2 + 3, c[2] : c[2] + 2] = 1
    start = time.perf_counter()
    unet_weight_map(label)
    assert time.perf_counter() - start < 10.0


def test_loss_is_weighted_mean_of_ce(pair):
    logits, labels = pair
    loss = UNetWeightedCrossEntropyLoss(sigma=2.0)
    maps = np.stack([unet_weight_map(s[0].long().numpy(), 10.0, 2.0) for s in labels])[:, None]
    ce = voxel_cross_entropy(logits, labels.long()).double().numpy()
    expected = (maps[:, 0] * ce).mean()
    assert loss(logits, labels).item() == pytest.approx(expected, rel=1e-5)
    precomputed = torch.from_numpy(maps)
    assert loss(logits, labels, weight_map=precomputed).item() == pytest.approx(expected, rel=1e-5)


def test_without_weights_is_ce(pair):
    logits, labels = pair
    loss = UNetWeightedCrossEntropyLoss(w0=0.0, class_balance=False)
    assert loss(logits, labels).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels[:, 0].long()).item(), rel=1e-6
    )


def test_weight_map_shape_error(pair):
    logits, labels = pair
    with pytest.raises(CTBenchError, match="unet_weighted.*weight_map shape"):
        UNetWeightedCrossEntropyLoss()(logits, labels, weight_map=torch.ones(1, 1, 2, 2))
