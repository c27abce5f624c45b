"""The options the GPU check (scripts/gpu_check.py, docs/performance.md) asked for: epochs of a fixed number of
volumes (``dataset.volumes_per_epoch``), pinned loader memory on a GPU, and ``compile=true``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ctbench.data.datamodule import VolumeDraws, volumes_per_epoch
from ctbench.engine.resume import config_differences, fingerprint
from ctbench.errors import CTBenchError

from cli_helpers import TINY


def test_volume_draws_are_the_same_for_the_same_seed_and_epoch_and_fill_the_epoch():
    dataset = list(range(5))
    draws = VolumeDraws(dataset, 12, seed=3)
    draws.set_epoch(4)
    first = list(draws)
    again = VolumeDraws(dataset, 12, seed=3)
    again.set_epoch(4)
    assert len(draws) == 12 and len(first) == 12
    assert first == list(again)  # a resumed epoch draws the interrupted run's volumes
    assert set(first) <= set(range(5))
    assert len(set(first)) < 12  # with replacement: 12 draws from 5 volumes repeat some
    draws.set_epoch(5)
    assert list(draws) != first


def test_volumes_per_epoch_is_split_over_the_ranks_and_refuses_a_non_count():
    assert volumes_per_epoch({}, 1) is None
    assert volumes_per_epoch({"volumes_per_epoch": None}, 2) is None
    assert volumes_per_epoch({"volumes_per_epoch": 250}, 1) == 250
    assert volumes_per_epoch({"volumes_per_epoch": 250}, 4) == 63  # ceil: every rank runs the same steps
    for bad in (0, -3, 2.5, "many"):
        with pytest.raises(CTBenchError, match="volumes_per_epoch"):
            volumes_per_epoch({"volumes_per_epoch": bad}, 1)


def test_the_new_keys_at_their_defaults_leave_older_runs_the_same_run():
    older = OmegaConf.create({"model": {"name": "unet"}, "dataset": {"name": "phantom"}, "seed": 0})
    now = OmegaConf.merge(older, {"compile": False, "dataset": {"volumes_per_epoch": None}})
    assert fingerprint(older) == fingerprint(now) and config_differences(older, now, finished=True) == []
    compiled = OmegaConf.merge(now, {"compile": True})
    drawn = OmegaConf.merge(now, {"dataset": {"volumes_per_epoch": 64}})
    assert fingerprint(compiled) != fingerprint(older) and fingerprint(drawn) != fingerprint(older)
    assert config_differences(older, compiled) == ["compile: '<absent>' -> True"]


def test_a_gpu_training_loader_pins_memory_and_draws_the_volumes_asked_for(tmp_path: Path):
    from ctbench.config import compose_with_context
    from ctbench.engine.throughput import build

    cfg, _ = compose_with_context("train", [*TINY, f"paths.data_dir={tmp_path}", f"paths.cache_dir={tmp_path}/cache",
                                            "trainer.accelerator=gpu", "dataset.num_workers=0",
                                            "dataset.volumes_per_epoch=7", "dataset.samples_per_volume=2",
                                            "dataset.batch_size_3d=2"])
    _, data = build(cfg)
    data.prepare_data()
    data.setup("fit")
    loader = data.train_dataloader()
    assert loader.pin_memory and isinstance(loader.sampler, VolumeDraws)
    assert len(loader) == 7  # one volume (2 patches) a batch, 7 volumes an epoch, whatever the case count
    assert len(data.split["train"]) != 7
    batch = next(iter(loader))
    assert batch["image"].shape[0] == 2


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")), reason="torch.compile on a CPU needs a C++ compiler")
def test_compile_true_trains_and_its_checkpoint_loads_into_an_uncompiled_network(tmp_path: Path):
    """``compile=true`` compiles the network in place (``nn.Module.compile``): a real fit and test run through
    the compiled forward, and the checkpoint's state_dict keys are the eager network's (no ``_orig_mod``)."""
    from ctbench.engine.build import build_module

    from cli_helpers import ctbench

    run = tmp_path / "run"
    proc = ctbench("train", *TINY, "compile=true", "dims=2", "trainer.max_epochs=1", f"hydra.run.dir={run}",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "report" / "summary.json").is_file()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert not any("_orig_mod" in key for key in ckpt["state_dict"])
    eager = build_module(OmegaConf.create(ckpt["hyper_parameters"]["cfg"]))
    eager.load_state_dict(ckpt["state_dict"], strict=True)
    assert ckpt["hyper_parameters"]["cfg"]["compile"] is True


@pytest.mark.parametrize(("override", "message"), [
    ("compile=maybe", "compile='maybe': give true"),
    ("dataset.volumes_per_epoch=many", "dataset.volumes_per_epoch='many': give a whole number"),
])
def test_a_bad_gpu_option_stops_with_one_line(tmp_path: Path, override: str, message: str):
    from cli_helpers import ctbench

    proc = ctbench("train", *TINY, override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("ctbench: error: ") and message in lines[-1]
    assert not (tmp_path / "run" / "checkpoints").exists()
