"""Shared fixtures: a tiny phantom and one tiny trained run, made once per test session; ``--cpu-durations``.

Tiers (tests/README.md): a test that takes more than about 3 s of CPU on the 2-core machine
(``pytest --cpu-durations=0``) is marked ``@pytest.mark.slow`` and runs in ``make test-all``; ``make test``
runs the rest, including a few seconds of fast tests per feature and a smoke test of every command.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

import pytest

from cli_helpers import TRAINED_RUN, ctbench


@pytest.fixture(autouse=True)
def _no_log_handler_left_behind():
    """A Hydra command run in-process (``ctbench.cli.main``) leaves the root logger as Hydra configured it:
    a console handler and a file handler in the run folder, which later tests' log lines would reach (or fail
    on, once the folder is gone). Detach and close what a test added; pytest's own handlers are subclasses."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    hydras = (logging.StreamHandler, logging.FileHandler)
    for handler in [h for h in root.handlers if h not in before and type(h) in hydras]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ctbench")


@pytest.fixture(scope="session")
def trained_run(workdir: Path) -> Path:
    """A 3D U-Net trained for a few epochs on the tiny phantom (``workdir/data/synthetic_tiny``); returns its
    run directory. Shared by every test that needs a checkpoint or a complete run folder: copy it, do not
    modify it."""
    run = workdir / "outputs" / "tiny"
    ctbench("train", *TRAINED_RUN, f"hydra.run.dir={run}", cwd=workdir)
    return run


# --------------------------------------------------------------------- CPU time per test (--cpu-durations)

_CPU_SECONDS = pytest.StashKey[dict[str, float]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-durations", type=int, default=None, metavar="N",
                     help="list the N tests that used the most CPU time, subprocesses included (0: all); "
                          "on a shared machine it grows less than --durations' wall time "
                          "(with OMP_NUM_THREADS=1)")


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished subprocesses, user + system."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    start = _cpu_seconds()
    yield
    item.config.stash.setdefault(_CPU_SECONDS, {})[item.nodeid] = _cpu_seconds() - start


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    count = config.getoption("cpu_durations")
    if count is None:
        return
    seconds = sorted(config.stash.get(_CPU_SECONDS, {}).items(), key=lambda item: -item[1])
    terminalreporter.write_sep("=", f"CPU seconds per test (setup + call + teardown, subprocesses included; "
                                    f"total {sum(s for _, s in seconds):.1f} s)")
    for nodeid, spent in seconds[:count or None]:
        terminalreporter.write_line(f"{spent:8.2f}  {nodeid}")
