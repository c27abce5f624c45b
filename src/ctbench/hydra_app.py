"""Run a Hydra-composed command (train, eval, predict, bench) with ctbench's error handling.

Config-group names are checked before Hydra starts, so ``model=unetx`` ends with one line listing
the valid names (exit 2) and no run directory is created; Hydra's own flags pass through unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ctbench.errors import CTBenchError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_GROUP_OVERRIDE = re.compile(r"^[+~]*(?P<group>[\w/]+)(@[\w.]+)?=(?P<value>.*)$")


def group_choices(group: str) -> list[str]:
    """Config names available in ``configs/GROUP`` (without ``.yaml``)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def check_group_overrides(overrides: Sequence[str]) -> None:
    """Raise (exit 2) when an override names a config-group option that does not exist."""
    for override in overrides:
        match = _GROUP_OVERRIDE.match(override)
        if not match or override.startswith("hydra.") or "(" in match["value"]:
            continue
        group = match["group"]
        if not (CONFIG_DIR / group).is_dir() or group.startswith("hydra"):
            continue
        valid = group_choices(group)
        for value in filter(None, match["value"].split(",")):
            if value != "null" and value not in valid:
                raise CTBenchError(f"unknown {group} '{value}': choose one of {', '.join(valid)} "
                                   f"(see `ctbench list`)", exit_code=2)


_LAUNCHER_OVERRIDE = re.compile(r"^[+~]*hydra/launcher=(?P<value>[\w.-]+)$")


def check_launcher(overrides: Sequence[str]) -> None:
    """A SLURM launcher on a machine without SLURM's ``sbatch``: one line (exit 2) before Hydra starts."""
    if not {"-m", "--multirun"} & set(overrides):
        return
    for override in overrides:
        match = _LAUNCHER_OVERRIDE.match(override)
        if match and "slurm" in match["value"] and shutil.which("sbatch") is None:
            raise CTBenchError(
                f"hydra/launcher={match['value']} submits the sweep to SLURM, but there is no `sbatch` on PATH on "
                "this machine: run the command on a SLURM login node, start a local cluster with "
                "`scripts/slurm_local.sh up`, or drop hydra/launcher=... to run the jobs here", exit_code=2)


def check_exclusive_flags(overrides: Sequence[str]) -> None:
    """Hydra takes one of ``-m``, ``--cfg``, ``--info``: say what to do instead of its traceback (exit 2)."""
    given = set(overrides)
    if {"-m", "--multirun"} & given and {"-c", "--cfg", "-i", "--info"} & given:
        raise CTBenchError("--cfg/--info show one job's config and cannot be combined with -m: drop -m and give one "
                           "value per key (e.g. `ctbench train --cfg job model=unet`) to see a sweep job's config",
                           exit_code=2)


def run_hydra_command(name: str, target: str, overrides: Sequence[str]) -> int:
    """``ctbench NAME overrides...`` -> Hydra app over ``configs/NAME.yaml`` calling ``target(cfg)``."""
    import importlib
    import logging
    import warnings

    import hydra

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(nvImageCodec|LeafSpec|treespec).*")
    # validation/test results are gathered across ranks and de-duplicated by case in the module,
    # so Lightning's advice on sync_dist and on DistributedSampler padding does not apply
    warnings.filterwarnings("ignore", message=".*(sync_dist=True|Using `DistributedSampler` with the dataloaders).*")

    check_exclusive_flags(overrides)
    if not {"--help", "-h", "--hydra-help", "--info"} & set(overrides):
        check_group_overrides(overrides)
        check_launcher(overrides)
    module, func = target.split(":")
    task: Callable = getattr(importlib.import_module(module), func)
    exit_code = 0

    def guarded(cfg) -> None:
        nonlocal exit_code
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        try:
            task(cfg)
        except CTBenchError as err:
            print(f"ctbench: error: {err}", file=sys.stderr)
            # into the run's log file too, where `ctbench report` and the end-of-sweep status read the reason
            logging.getLogger("ctbench").error("CTBenchError: %s", err)
            exit_code = err.exit_code
            if HydraConfig.get().mode != RunMode.MULTIRUN:  # a sweep goes on with its other jobs
                raise SystemExit(err.exit_code) from None

    os.environ["CTBENCH_HYDRA_COMMAND"] = name  # DDP ranks re-run this command through hydra_entry.py
    sys.argv = [str(Path(__file__).with_name("hydra_entry.py")), *overrides]
    hydra.main(config_path=str(CONFIG_DIR), config_name=name, version_base="1.3")(guarded)()
    from ctbench import sweep_status

    return exit_code or (1 if sweep_status.failed_jobs else 0)
