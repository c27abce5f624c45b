"""Shared fixtures: a tiny phantom and one tiny trained run, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import TINY, ctbench


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ctbench")


@pytest.fixture(scope="session")
def trained_run(workdir: Path) -> Path:
    """A 3D U-Net trained for a few epochs on the tiny phantom; returns its run directory."""
    run = workdir / "outputs" / "tiny"
    ctbench("train", *TINY, "trainer.max_epochs=8", "trainer.check_val_every_n_epoch=2", "dataset.phantom.cases=8",
            f"hydra.run.dir={run}", cwd=workdir)
    return run
