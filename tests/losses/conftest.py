"""Small inputs shared by the loss tests (2x3x8x8x8 at most: the test machine is shared)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def softmax_np(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 1 in float64, the reference for every numpy formula in these tests."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def one_hot_np(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``[B, 1, *spatial]`` labels -> ``[B, C, *spatial]`` float64 one-hot."""
    return np.concatenate([(labels == c).astype(np.float64) for c in range(num_classes)], axis=1)


@pytest.fixture(params=[2, 3], ids=["2d", "3d"])
def pair(request) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits [2, 3, 8, 8(, 8)] and float-typed integer labels [2, 1, 8, 8(, 8)]."""
    gen = torch.Generator().manual_seed(request.param)
    spatial = (8,) * request.param
    logits = torch.randn(2, 3, *spatial, generator=gen) * 2
    labels = torch.randint(0, 3, (2, 1, *spatial), generator=gen).float()
    return logits, labels


@pytest.fixture
def np_helpers():
    return softmax_np, one_hot_np
