"""Property (issue 20): any stored run config through the checkpoint loader either loads an allowed network or
is refused with one line and exit code 2; nothing is written, and nothing outside the allowlist is imported.

The stored configs are a real ctbench run config (the tiny U-Net's, with its real weights) with up to three
keys replaced by hypothesis-generated values: ``_target_`` blocks naming MONAI, torch, Lightning, builtins and
ctbench callables, nested lists and mappings, numbers at the extremes, interpolations and paths.
"""

from __future__ import annotations

import copy
import io
import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctbench.engine.allowlist import ALLOWED
from ctbench.errors import CTBenchError

TARGETS = [
    "monai.losses.PerceptualLoss", "monai.networks.nets.UNet", "monai.networks.nets.SwinUNETR", "monai.apps.download_url",
    "monai.bundle.load", "torch.nn.Linear", "torch.nn.Conv3d", "torch.load", "torch.hub.load", "torch.optim.SGD",
    "torch.save", "lightning.pytorch.Trainer", "lightning.pytorch.callbacks.ModelCheckpoint", "builtins.eval",
    "builtins.exec", "builtins.open", "builtins.__import__", "os.system", "os.remove", "subprocess.Popen",
    "shutil.rmtree", "pickle.loads", "importlib.import_module", "numpy.load", "xml.etree.ElementTree.parse",
    "ctbench.atomic.atomic_write", "ctbench.atomic.os.system", "ctbench.models.unet.UNet", "ctbench.models.vnet.VNet",
    "ctbench.losses.dice.DiceLoss", "ctbench.engine.adversarial.AdversarialSegmentationModule",
    "ctbench.engine.lr_schedules.PolyLR", "ctbench.data.readers.msd.SyntheticReader", "nonexistent.module.Class",
    "", "UNet", "ctbench.models.unet.UNet.__init__",
]
PATHS = [
    ("model",), ("loss",), ("optim",), ("dims",), ("names",), ("inference",), ("postprocess",), ("dataset",),
    ("trainer",), ("seed",), ("fold",), ("extra",), ("model", "_target_"), ("model", "channels"),
    ("model", "strides"), ("model", "spatial_dims"), ("model", "in_channels"), ("model", "out_channels"),
    ("model", "num_res_units"), ("model", "lightning_module"), ("model", "pretrained"), ("model", "extra"),
    ("loss", "_target_"), ("loss", "extra"), ("optim", "optimizer", "_target_"), ("optim", "scheduler"),
    ("dataset", "preprocessing"), ("dataset", "preprocessing", "spacing"), ("dataset", "preprocessing", "window"),
    ("dataset", "preprocessing", "orientation"), ("dataset", "class_names"), ("dataset", "patch_size_3d"),
    ("dataset", "max_voxels"), ("dataset", "root"), ("dataset", "cache_dir"), ("dataset", "reader"),
    ("inference", "tta_flips"), ("inference", "blend"), ("inference", "sw_batch_size_3d"), ("inference", "overlap"),
    ("names", "model"),
]
STRINGS = ["${oc.env:HOME}", "${oc.decode:'{_target_: os.system}'}", "../../etc/passwd", "/tmp", "gaussian", "RAS",
           "abdomen", "zscore", "crf", "lcc", "x" * 300, "A\\B", "ctbench.models.unet.UNet"]
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
    st.sampled_from([0, 1, 2, 3, -1, 5, 16, 64, 4096, 4097, 200_000, 2**31, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 1e-308, 0.001, 0.1, 1.5, 10.0]),
    st.text(max_size=12), st.sampled_from(STRINGS))
CALLS = st.builds(lambda target, kwargs: {"_target_": target, **kwargs}, st.sampled_from(TARGETS), st.dictionaries(
    st.sampled_from(["cache_dir", "command", "f", "spatial_dims", "channels", "_args_", "_partial_", "_recursive_",
                     "_convert_", "path", "network_type", "in_channels"]), LEAVES, max_size=3))
VALUES = st.recursive(st.one_of(LEAVES, CALLS), lambda inner: st.one_of(
    st.lists(inner, max_size=5),
    st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(["_target_", "lightning_module", "channels"])),
                    inner, max_size=4)), max_leaves=12)


def _set(cfg: dict, path: tuple[str, ...], value) -> None:
    node = cfg
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A real tiny run's stored config and network weights (as a ctbench checkpoint holds them), every allowlisted
    class imported once (so that any module imported later is one the loader should not have imported)."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from ctbench.config import compose
    from ctbench.engine.components import build_model

    folder = tmp_path_factory.mktemp("property")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        cfg = compose("train", ["debug=fast", "model.channels=[4,8,8,8]"])  # small weights: fast examples
        stored = OmegaConf.to_container(cfg, resolve=True)
    finally:
        os.chdir(cwd)
    state = {f"model.{k}": v for k, v in build_model(cfg).state_dict().items()}
    for role in ("model", "lightning_module", "loss", "optimizer", "scheduler"):
        for target in ALLOWED[role]:
            get_class(target)
    from ctbench.engine.checkpoint import model_from_checkpoint

    model_from_checkpoint(_save(folder, stored, state))  # the loader's own modules, imported by its first use
    return folder, stored, state


def _save(folder: Path, stored: dict, state: dict) -> Path:
    path = folder / "forged.ckpt"
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "hyper_parameters": {"cfg": stored}, "epoch": 1}, buffer)
    path.write_bytes(buffer.getvalue())
    return path


def _files(*folders: Path) -> set[str]:
    return {str(p) for folder in folders for p in folder.rglob("*")}


@pytest.mark.slow
@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutations=st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=3))
def test_any_stored_config_loads_an_allowed_network_or_is_refused_in_one_line(base, mutations, monkeypatch):
    import hydra._internal.utils as hydra_utils

    from ctbench.engine.checkpoint import model_from_checkpoint

    folder, stored, state = base
    monkeypatch.chdir(folder)
    stored = copy.deepcopy(stored)
    for path, value in mutations:
        _set(stored, path, value)
    ckpt = _save(folder, stored, state)
    located = []
    real_locate = hydra_utils._locate
    monkeypatch.setattr(hydra_utils, "_locate", lambda target: located.append(target) or real_locate(target))
    modules, files = set(sys.modules), _files(folder.parent)
    try:
        model = model_from_checkpoint(ckpt)[0]
    except CTBenchError as err:
        message = str(err)
        assert err.exit_code == 2 and message and "\n" not in message, message
    else:
        assert f"{type(model).__module__}.{type(model).__qualname__}" in ALLOWED["model"]
    allowed = set().union(*ALLOWED.values())
    assert all(target in allowed for target in located), located
    assert set(sys.modules) - modules == set()
    assert _files(folder.parent) == files  # the command's folder and its neighbours: nothing written
