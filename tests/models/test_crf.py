"""Dense-CRF post-processing (DeepLab v1): shapes, probabilities, and that it cleans noisy predictions."""

from __future__ import annotations

import pytest
import torch

from ctbench.errors import CTBenchError
from ctbench.models.crf import dense_crf


def noisy_disk(dims: int, n: int = 32, noise: float = 1.5):
    torch.manual_seed(0)
    grid = torch.meshgrid(*[torch.arange(n, dtype=torch.float32)] * dims, indexing="ij")
    inside = sum((g - n / 2) ** 2 for g in grid) < (n / 3) ** 2
    image = inside.float() + 0.1 * torch.randn(inside.shape)
    logits = torch.stack([-(inside.float() - 0.5) * 2, (inside.float() - 0.5) * 2]) + noise * torch.randn(2, *inside.shape)
    return torch.softmax(logits, 0)[None], image[None, None], inside.long()


@pytest.mark.parametrize("dims", [2, 3])
def test_crf_snaps_a_noisy_prediction_to_the_intensity_edge(dims):
    probs, image, truth = noisy_disk(dims)
    refined = dense_crf(probs, image, iterations=5, bilateral_sigma=4.0)
    assert refined.shape == probs.shape
    torch.testing.assert_close(refined.sum(1), torch.ones_like(refined[:, 0]))
    before = (probs.argmax(1)[0] == truth).float().mean()
    after = (refined.argmax(1)[0] == truth).float().mean()
    print(f"{dims}D accuracy {before:.3f} -> {after:.3f}")
    assert after > before + 0.1 and after > 0.97


def test_zero_weights_keep_the_input():
    probs, image, _ = noisy_disk(2)
    out = dense_crf(probs, image, gaussian_weight=0.0, bilateral_weight=0.0)
    torch.testing.assert_close(out, probs, atol=1e-5, rtol=1e-4)


def test_sigmas_in_mm_with_spacing_and_anisotropic_volumes():
    probs, image, _ = noisy_disk(3, n=16)
    out = dense_crf(probs[..., :8], image[..., :8], spacing=(1.0, 1.0, 2.5), bilateral_sigma=4.0, gaussian_sigma=2.0)
    assert out.shape == probs[..., :8].shape and torch.isfinite(out).all()


def test_mismatched_shapes_are_one_line_errors():
    with pytest.raises(CTBenchError, match="same size"):
        dense_crf(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 9))


def test_default_sigmas_are_voxels_even_with_spacing_explicit_ones_are_mm():
    probs, image, _ = noisy_disk(2)
    plain = dense_crf(probs, image)
    torch.testing.assert_close(dense_crf(probs, image, spacing=(4.0, 4.0)), plain)
    torch.testing.assert_close(dense_crf(probs, image, spacing=(4.0, 4.0), gaussian_sigma=4.0, bilateral_sigma=32.0),
                               plain)


def test_crf_settings_of_a_config_reach_dense_crf_and_bad_ones_are_one_line():
    """``crf.*`` of ``ctbench eval`` (configs/eval.yaml, tuned by ``ctbench study``): nulls keep dense_crf's
    defaults, set values are its keyword arguments; an unknown key or an out-of-range value is refused."""
    from omegaconf import OmegaConf

    from ctbench.config import CONFIG_DIR
    from ctbench.engine.segmenter import Segmenter
    from ctbench.models.crf import crf_settings

    block = {"gaussian_weight": 1.0, "gaussian_sigma": None, "bilateral_weight": 0, "bilateral_sigma": 4.0}
    assert crf_settings(block) == {"gaussian_weight": 1.0, "bilateral_weight": 0.0, "bilateral_sigma": 4.0}
    probs, image, _ = noisy_disk(2)
    torch.testing.assert_close(dense_crf(probs, image, **crf_settings({"bilateral_weight": 0, "gaussian_weight": 0})),
                               probs)  # the settings are what runs: zero weights keep the input
    for bad, match in (({"iterations": 50}, "crf.iterations: not a dense CRF setting"),
                       ({"intensity_sigma": 0.0}, r"crf.intensity_sigma=0.0: give a number from 0.01 to 1"),
                       ({"bilateral_weight": "6"}, "crf.bilateral_weight='6'")):
        with pytest.raises(CTBenchError, match=match):
            crf_settings(bad)
    crf = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "eval.yaml").crf, {"bilateral_weight": 6, "bilateral_sigma": 30})
    cfg = OmegaConf.create({"dims": 2, "postprocess": "crf", "crf": crf, "dataset": {"patch_size_2d": [32, 32]},
                            "inference": {"overlap": 0.25, "sw_batch_size_2d": 4, "blend": "gaussian", "tta_flips": []}})
    assert Segmenter(torch.nn.Identity(), cfg).crf == {"gaussian_weight": 1.0, "bilateral_weight": 6.0,
                                                       "bilateral_sigma": 30.0, "intensity_sigma": 0.05}
    cfg.postprocess = None  # train's test and predict: no crf block, dense_crf's defaults
    assert Segmenter(torch.nn.Identity(), cfg).crf == {}
