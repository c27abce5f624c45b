"""Loss variants (``loss.variant=paper|reference_code``) against their sources on hand-computed cases,
and every config's defaults equal to its class's (one default per loss, in one place)."""

from __future__ import annotations

import importlib
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ctbench.errors import CTBenchError
from ctbench.losses.combo import ComboLoss
from ctbench.losses.tversky import FocalTverskyLoss

REPO = Path(__file__).resolve().parents[2]


def binary_logits(p_foreground: list[list[float]]) -> torch.Tensor:
    """Two-class logits ``[B, 2, N]`` whose softmax foreground probability is ``p_foreground``."""
    p = torch.tensor(p_foreground, dtype=torch.float64)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], 1).float()


def test_combo_variants_by_hand():
    # one sample, p̂ = (0.8, 0.4), truth (1, 0), α = β = 0.5
    logits, labels = binary_logits([[0.8, 0.4]]), torch.tensor([[[1, 0]]])
    # paper eq. (3): CE = -(β ln .8 + (1-β) ln .6)/2 = 0.183492; Dice = (1.6 + s)/(2.2 + s) = 0.727274
    paper = 0.5 * 0.5 * -(0.5 * math.log(0.8) + 0.5 * math.log(0.6)) - 0.5 * (1.6 + 1e-5) / (2.2 + 1e-5)
    assert paper == pytest.approx(-0.271891, abs=1e-6)
    assert ComboLoss()(logits, labels).item() == pytest.approx(paper, abs=1e-6)
    # combo_loss.py: CE = mean(-β ln .8, -β(1-β) ln .6) = 0.119639; d = (2·0.8 + 1)/(1 + 1.2 + 1) = 0.8125
    code = 0.5 * (-0.5 * math.log(0.8) - 0.25 * math.log(0.6)) / 2 - 0.5 * 0.8125
    assert code == pytest.approx(-0.346430, abs=1e-6)
    assert ComboLoss(variant="reference_code")(logits, labels).item() == pytest.approx(code, abs=1e-6)


def keras_combo(y_true: np.ndarray, y_pred: np.ndarray, ce_w: float, ce_d_w: float) -> float:
    """asgsaeid/ComboLoss ``combo_loss.py`` ``Combo_loss`` in numpy (K.epsilon() = 1e-7, smooth = 1)."""
    t, p = y_true.ravel(), y_pred.ravel()
    d = (2.0 * (t * p).sum() + 1) / (t.sum() + p.sum() + 1)
    p = np.clip(p, 1e-7, 1 - 1e-7)
    out = -(ce_w * ((t * np.log(p)) + ((1 - ce_w) * (1.0 - t) * np.log(1.0 - p))))
    return ce_d_w * out.mean() - (1 - ce_d_w) * d


def keras_focal_tversky(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """nabsabraham/focal-tversky-unet ``losses.py`` ``focal_tversky`` in numpy (alpha 0.7, gamma 0.75)."""
    t, p = y_true.ravel(), y_pred.ravel()
    tp, fn, fp = (t * p).sum(), (t * (1 - p)).sum(), ((1 - t) * p).sum()
    return (1 - (tp + 1) / (tp + 0.7 * fn + 0.3 * fp + 1)) ** 0.75


@pytest.mark.parametrize("alpha,beta", [(0.5, 0.5), (0.3, 0.8)])
def test_combo_reference_code_equals_the_authors_function(alpha, beta):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 6, 6, generator=gen) * 3
    labels = torch.randint(0, 2, (2, 1, 6, 6), generator=gen)
    p = torch.softmax(logits.double(), 1)[:, 1].numpy()
    expected = keras_combo(labels[:, 0].double().numpy(), p, beta, alpha)
    loss = ComboLoss(alpha=alpha, beta=beta, variant="reference_code")(logits, labels)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_focal_tversky_variants_by_hand():
    # two samples: p̂ = (0.8, 0.4), truth (1, 0); p̂ = (0.3, 0.9), truth (0, 1)
    logits, labels = binary_logits([[0.8, 0.4], [0.3, 0.9]]), torch.tensor([[[1, 0]], [[0, 1]]])
    # authors' code: whole batch, TP = 1.7, FN = 0.3, FP = 0.7: TI = 2.7 / 3.12, (1 - TI)^0.75 = 0.222239
    code = (1 - 2.7 / 3.12) ** 0.75
    assert code == pytest.approx(0.222239, abs=1e-6)
    assert FocalTverskyLoss(variant="reference_code")(logits, labels).item() == pytest.approx(code, abs=1e-6)
    # paper: per sample, TI_1 = 0.8/(0.8 + 0.7·0.2 + 0.3·0.4) = 0.8/1.06, TI_2 = 0.9/(0.9 + 0.07 + 0.09) = 0.9/1.06
    s = 1e-5
    paper = ((1 - (0.8 + s) / (1.06 + s)) ** 0.75 + (1 - (0.9 + s) / (1.06 + s)) ** 0.75) / 2
    assert paper == pytest.approx(0.295349, abs=1e-6)
    assert FocalTverskyLoss()(logits, labels).item() == pytest.approx(paper, abs=1e-6)


def test_focal_tversky_reference_code_equals_the_authors_function():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 2, 5, 5, 5, generator=gen) * 2
    labels = torch.randint(0, 2, (3, 1, 5, 5, 5), generator=gen)
    p = torch.softmax(logits.double(), 1)[:, 1].numpy()
    expected = keras_focal_tversky(labels[:, 0].double().numpy(), p)
    loss = FocalTverskyLoss(variant="reference_code")(logits, labels)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_an_explicit_setting_wins_over_the_variant():
    gen = torch.Generator().manual_seed(3)
    logits, labels = torch.randn(2, 2, 4, 4, generator=gen), torch.randint(0, 2, (2, 1, 4, 4), generator=gen)
    per_sample_smooth_1 = FocalTverskyLoss(variant="reference_code", batch=False)(logits, labels)
    assert per_sample_smooth_1.item() == pytest.approx(
        FocalTverskyLoss(smooth_nr=1.0, smooth_dr=1.0)(logits, labels).item(), rel=1e-6)
    assert per_sample_smooth_1.item() != pytest.approx(FocalTverskyLoss(variant="reference_code")(logits, labels).item())


@pytest.mark.parametrize("cls", [ComboLoss, FocalTverskyLoss])
def test_unknown_variant_is_one_line(cls):
    with pytest.raises(CTBenchError, match=r"has no variant 'keras': set loss.variant to one of paper, reference_code"):
        cls(variant="keras")


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "loss").glob("*.yaml")) +
                         sorted((REPO / "configs" / "model").glob("*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_defaults_equal_the_class_defaults(path):
    """A value in configs/{loss,model}/NAME.yaml that is not an interpolation is the class's own default."""
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg.pop("lightning_module", None)  # read by the engine, not a constructor argument
    module, name = cfg.pop("_target_").rsplit(".", 1)
    params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    for key, value in cfg.items():
        if isinstance(value, str) and value.startswith("${"):
            continue
        default = params[key].default
        assert (list(default) if isinstance(default, tuple) else default) == value, f"{path.name}: {key}"
