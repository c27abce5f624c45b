"""Every architecture, dims 2 and 3: forward + backward keeps the input size with finite gradients,
and a few optimiser steps on a fixed phantom batch lower the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ctbench.data.synthetic import make_case

from model_helpers import MODEL_NAMES

pytestmark = pytest.mark.filterwarnings("ignore")


def phantom_batch(dims: int, side: int = 32, cases: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``cases`` phantom crops at 10 mm voxels centred on the liver; HU window [-160, 240] -> [0, 1]."""
    images, labels = [], []
    for seed in range(cases):
        hu, label, _ = make_case(np.random.default_rng(seed), (10.0, 10.0, 10.0), noise_hu=20.0)
        center = [int(c.mean()) for c in np.nonzero(label == 1)]
        box = tuple(slice(max(0, min(c - side // 2, n - side)), max(0, min(c - side // 2, n - side)) + side)
                    for c, n in zip(center, label.shape, strict=True))
        hu, label = np.pad(hu[box], [(0, side - s) for s in hu[box].shape], constant_values=-1000), \
            np.pad(label[box], [(0, side - s) for s in label[box].shape])
        if dims == 2:
            hu, label = hu[:, :, side // 2], label[:, :, side // 2]
        images.append(np.clip((hu + 160) / 400, 0, 1))
        labels.append(label.astype(np.int64))
    return torch.from_numpy(np.stack(images))[:, None].float(), torch.from_numpy(np.stack(labels))


#: the cases under 3 s of CPU (``pytest --cpu-durations``, 2-core machine) stay in the fast tier; the others
#: are slow (tests/README.md): drinet, fcdensenet, segan, ... up to 26 s, the nnU-Net-width and transformer
#: models 3-40 s (their fast shape tests: tests/models/test_modern_models.py)
FAST = {("unet", 2), ("unet", 3), ("vnet", 2), ("fcn32s", 2), ("fcn32s", 3), ("fcn16s", 2), ("fcn16s", 3),
        ("fcn8s", 2), ("deeplabv1", 2), ("cascaded_fcn", 2), ("pspnet", 2), ("deeplabv3", 3),
        ("deeplabv3p", 3)}


@pytest.mark.parametrize(("name", "dims"), [
    (n, d) if (n, d) in FAST else pytest.param(n, d, marks=pytest.mark.slow)
    for n in MODEL_NAMES for d in (2, 3)])
def test_forward_backward_and_a_few_steps_lower_the_loss(name, dims, build_model, side_for):
    torch.manual_seed(0)
    model = build_model(name, dims, num_classes=5)
    side = side_for(model)  # 32, or the model's smallest input (Swin UNETR: 64)
    if dims == 3 and side > 32:
        pytest.skip(f"{name} needs {side}^3 inputs: ~10 s a step on this CPU (tests/models/test_modern_models.py)")
    image, label = phantom_batch(dims, side)
    assert isinstance(model.size_divisor, int) and 32 % model.size_divisor == 0
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for step in range(8 if dims == 2 else 5):
        opt.zero_grad()
        logits = model(image)
        loss = F.cross_entropy(logits, label)
        loss.backward()
        if step == 0:
            assert logits.shape == (2, 5) + (side,) * dims and torch.isfinite(logits).all()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            assert grads and all(torch.isfinite(g).all() for g in grads), f"{name}: missing or non-finite gradients"
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        torch.manual_seed(0)
        final = F.cross_entropy(model(image), label).item()
    assert min(final, losses[-1]) < losses[0], f"{name} dims={dims}: losses {losses} then {final}"
