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

from ctbench import folder_lock, run_folder
from ctbench.config import (
    CONFIG_DIR,
    VERSION_BASE,
    RunContext,
    check_group_overrides,
    composition_error_line,
    unknown_key_error,
)
from ctbench.errors import CTBenchError, describe

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


def _without_litlogger_tip(record) -> bool:
    return "litlogger" not in record.getMessage()


def silence_known_warnings() -> None:
    """Library warnings that do not apply to ctbench's use (checked once, each with its reason)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(nvImageCodec|LeafSpec|treespec).*")
    # validation/test results are gathered across ranks and de-duplicated by case in the module,
    # so Lightning's advice on sync_dist and on DistributedSampler padding does not apply
    warnings.filterwarnings("ignore", message=".*(sync_dist=True|Using `DistributedSampler` with the dataloaders).*")
    # a one-slice input resampled by MONAI: on a unit-size axis there is one sample, where align_corners changes nothing
    warnings.filterwarnings("ignore", message=".*affine_grid behavior has changed for unit-size grids.*")
    # Lightning's advertisement for its cloud logger, printed on every run
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_without_litlogger_tip)  # added once


def remove_refused_run_dir(ctx: RunContext) -> None:
    """No ``outputs/NAME/TIMESTAMP/`` for a command refused before it started (only Hydra's and the setup's files
    and the log with the refusal, already printed); a folder holding anything else, or that another process holds (:mod:`ctbench.folder_lock`), is kept."""
    import logging

    if not run_folder.refused_at_setup(ctx.run_dir) or folder_lock.in_use(ctx.run_dir):  # another's fresh run
        return
    folder = ctx.run_dir.resolve()
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    for logger in loggers:  # the job's log file is closed and detached before its folder goes
        for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            if Path(handler.baseFilename).resolve().is_relative_to(folder):
                logger.removeHandler(handler)
                handler.close()
    shutil.rmtree(ctx.run_dir, ignore_errors=True)
    for parent in () if ctx.run_dir_given else ctx.run_dir.parents[:2]:  # outputs/NAME/ and outputs/ when empty
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def run_hydra_command(name: str, target: str, overrides: Sequence[str]) -> int:
    """``ctbench NAME overrides...`` -> Hydra app over ``configs/NAME.yaml`` calling ``target(cfg)``."""
    import importlib
    import logging

    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    silence_known_warnings()

    check_exclusive_flags(overrides)
    if not {"--help", "-h", "--hydra-help", "--info"} & set(overrides):
        check_group_overrides(overrides)
        check_launcher(overrides)
    module, func = target.split(":")
    task: Callable = getattr(importlib.import_module(module), func)
    exit_code = 0

    started = False
    refused: list[RunContext] = []

    def guarded(cfg) -> None:
        nonlocal exit_code, started
        started = True
        try:
            task(cfg, RunContext.from_hydra())
        except CTBenchError as err:
            print(f"ctbench: error: {describe(err)}", file=sys.stderr)
            # into the run's log file too, where `ctbench report` and the end-of-sweep status read the reason
            logging.getLogger("ctbench").error("CTBenchError: %s", err)
            exit_code = err.exit_code
            ctx = RunContext.from_hydra()
            if not ctx.multirun:  # a sweep goes on with its other jobs
                refused.append(ctx)
                raise SystemExit(err.exit_code) from None

    os.environ["CTBENCH_HYDRA_COMMAND"] = name  # DDP ranks re-run this command through hydra_entry.py
    sys.argv = [str(Path(__file__).with_name("hydra_entry.py")), *overrides]
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # composition errors reach the except below as exceptions
    try:
        hydra.main(config_path=str(CONFIG_DIR), config_name=name, version_base=VERSION_BASE)(guarded)()
    except (HydraException, OmegaConfBaseException) as err:
        if started:  # raised by the task itself: a bug, keep the traceback
            raise
        raise unknown_key_error(name, overrides, str(err)) or CTBenchError(
            f"cannot compose `ctbench {name} {' '.join(overrides)}`: {composition_error_line(err)}", exit_code=2) from None
    finally:
        for ctx in refused:
            remove_refused_run_dir(ctx)
    from ctbench import sweep_status

    return exit_code or (1 if sweep_status.failed_jobs else 0)
