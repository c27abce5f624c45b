"""Every survey architecture has a config, a docstring naming its paper, and a factory entry.

(Forward/backward, shapes and gradients: ``test_models_train.py``.)"""

from __future__ import annotations

import pytest

from ctbench.errors import CTBenchError

from model_helpers import MODEL_NAMES

pytestmark = pytest.mark.filterwarnings("ignore")


def test_every_survey_architecture_has_a_config():
    expected = {"fcn32s", "fcn16s", "fcn8s", "cascaded_fcn", "segnet", "unet", "vnet", "fcdensenet", "deeplabv1",
                "deeplabv2", "deeplabv3", "deeplabv3p", "pspnet", "drinet", "attention_unet", "segan"}
    assert expected <= set(MODEL_NAMES)


def test_config_first_line_is_the_list_entry():
    from model_helpers import MODEL_DIR

    for name in MODEL_NAMES:
        first = (MODEL_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# ") and " — " in first and ": " in first, f"{name}.yaml: {first}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_docstring_names_paper(name, build_model):
    model = build_model(name, 2, num_classes=5)
    module = __import__(type(model).__module__, fromlist=["x"])
    text = (module.__doc__ or "") + (type(model).__doc__ or "")
    assert "Novelty" in text or "novel" in text.lower(), f"{name}: module docstring should say what is novel"
    assert any(str(year) in text for year in range(2011, 2021)), f"{name}: docstring should name the paper year"
    assert "MONAI" in text or "Hand-written" in text, f"{name}: docstring should say what is reused or why hand-written"


def test_factory_names_match_the_configs():
    from omegaconf import OmegaConf

    from ctbench.models import create_model, model_class

    from model_helpers import MODEL_DIR

    for name in MODEL_NAMES:
        target = OmegaConf.load(MODEL_DIR / f"{name}.yaml")._target_
        cls = model_class(name)
        assert f"{cls.__module__}.{cls.__name__}" == target, name
    with pytest.raises(CTBenchError, match="unknown model 'unetx'"):
        model_class("unetx")
    assert create_model("unet", 2, 1, 3).size_divisor == 8
