"""The one place a ctbench config is composed: the config folder, the group names, Hydra's compose API.

The CLI (:mod:`ctbench.hydra_app`, through ``hydra.main``), the Python API (:mod:`ctbench.api`), the
integrity check, the scripts and the tests all compose here, so every default lives in ``configs/`` only.
A task (train, eval, predict, bench) receives the composed config and a :class:`RunContext` (its run
folder, the group choices, the command-line overrides), so it runs the same under ``hydra.main`` and
from Python, without a live Hydra runtime.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctbench.errors import CTBenchError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: Hydra's compatibility level, the same for ``hydra.main`` and the compose API
VERSION_BASE = "1.3"
#: the config groups whose choice names a run (``names`` in the run config and the report)
NAMED_GROUPS = ("model", "loss", "dataset")

_GROUP_OVERRIDE = re.compile(r"^[+~]*(?P<group>[\w/]+)(@[\w.]+)?=(?P<value>.*)$")


@dataclass(frozen=True)
class RunContext:
    """Where a task writes and what it was composed from.

    Args:
        run_dir: the run folder (Hydra's ``hydra.run.dir``, or one job's folder in a sweep).
        choices: config-group choices, e.g. ``{"model": "unet", "loss": "dice_ce"}``.
        overrides: the task's command-line overrides as given.
        multirun: True for one job of a ``-m`` sweep (failures are reported, the sweep goes on).
        run_dir_given: True when the command named the folder (``hydra.run.dir=...``), not Hydra's default.
    """

    run_dir: Path
    choices: Mapping[str, str] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    multirun: bool = False
    run_dir_given: bool = False

    def given_keys(self) -> list[str]:
        """The keys the overrides set (``dataset``, ``dataset.test_cases``, ...)."""
        return [o.lstrip("+~").split("=")[0] for o in self.overrides if "=" in o]

    @classmethod
    def from_hydra(cls) -> RunContext:
        """The context of the running ``hydra.main`` job."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        return cls(run_dir=Path(hc.runtime.output_dir),
                   choices={k: str(v) for k, v in hc.runtime.choices.items() if v is not None},
                   overrides=tuple(hc.overrides.task), multirun=hc.mode == RunMode.MULTIRUN,
                   run_dir_given=_names_run_dir(hc.overrides.hydra))


def _names_run_dir(overrides: Sequence[str]) -> bool:
    return any(o.lstrip("+~").startswith("hydra.run.dir=") for o in overrides)


def group_choices(group: str) -> list[str]:
    """Config names available in ``configs/GROUP`` (without ``.yaml``; ``claims/c1_fcn_skips`` for a file in a
    subfolder, as Hydra names it)."""
    root = CONFIG_DIR / group
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def config_groups() -> list[str]:
    """Every selectable config group (``model``, ``loss``, ..., ``hydra/launcher``)."""
    groups = [p.relative_to(CONFIG_DIR).as_posix() for p in CONFIG_DIR.rglob("*") if p.is_dir()]
    return sorted(g for g in groups if any((CONFIG_DIR / g).glob("*.yaml")))


def check_group_overrides(overrides: Sequence[str]) -> None:
    """Raise (exit 2) when an override names a config-group option that does not exist, or adds a top-level key
    that nothing reads (:func:`check_new_top_level_keys`)."""
    check_new_top_level_keys(overrides)
    for override in overrides:
        match = _GROUP_OVERRIDE.match(override)
        if not match or override.startswith("hydra.") or "(" in match["value"]:
            continue
        group = match["group"]
        if not (CONFIG_DIR / group).is_dir() or group.startswith("hydra"):
            continue
        valid = group_choices(group)
        for value in filter(None, match["value"].strip("[]").split(",")):
            if value != "null" and value not in valid:
                raise CTBenchError(f"unknown {group} '{value}': choose one of {', '.join(valid)} "
                                   f"(see `ctbench list`)", exit_code=2)


def check_new_top_level_keys(overrides: Sequence[str]) -> None:
    """Raise (exit 2) for ``+KEY=...`` adding a top-level key: every key a task reads is in its config file, so
    such a key would be read by nothing (a typo of ``model=...`` trains the default silently)."""
    for override in overrides:
        key = override.split("=", 1)[0]
        if "=" not in override or not key.startswith("+") or key.startswith("++"):
            continue
        name = key.lstrip("+")
        if "." in name or "/" in name or "@" in name or name.startswith("hydra") or (CONFIG_DIR / name).is_dir():
            continue
        match = difflib.get_close_matches(name, config_groups(), n=1)
        hint = f"did you mean '{match[0]}'?" if match else "no ctbench component reads it (`--cfg job` lists the keys)"
        raise CTBenchError(f"unknown key '{name}': {hint}", exit_code=2)


def composition_error_line(err: BaseException) -> str:
    """The first line of a Hydra/OmegaConf composition error, or of its cause when Hydra's own message is empty (a
    YAML value OmegaConf cannot parse)."""
    from ctbench.errors import describe

    return describe(err) if str(err).strip() or err.__cause__ is None else describe(err.__cause__)


def unknown_key_error(task: str, overrides: Sequence[str], message: str) -> CTBenchError | None:
    """Hydra's "Could not override 'KEY'" as one line with the nearest existing key, or None for other errors."""
    found = re.match(r"Could not override '(?P<key>[^']+)'", message)
    if not found:
        return None
    key = found["key"]
    parent, _, leaf = key.rpartition(".")
    others = [o for o in overrides if o.lstrip("+~").split("=")[0] != key]
    try:
        from omegaconf import OmegaConf

        cfg = _hydra_compose(task, others)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        names = [str(k) for k in node.keys()] if node is not None and hasattr(node, "keys") else []
    except CTBenchError:
        names = []
    if not parent:
        names += config_groups()
    match = difflib.get_close_matches(leaf, [n for n in names if n != "hydra"], n=1)
    hint = (f"did you mean '{parent + '.' if parent else ''}{match[0]}'?" if match
            else f"`ctbench {task} --cfg job` lists the keys")
    return CTBenchError(f"unknown key '{key}': {hint}", exit_code=2)


def _hydra_compose(task: str, overrides: Sequence[str]):
    """Hydra's compose API over ``configs/TASK.yaml``, restoring any Hydra state around it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf.errors import OmegaConfBaseException

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=VERSION_BASE):
            return hydra_compose(task, overrides=list(overrides), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        unknown = unknown_key_error(task, overrides, str(err))
        if unknown is not None:
            raise unknown from None
        raise CTBenchError(f"cannot compose `ctbench {task} {' '.join(overrides)}`: "
                           f"{composition_error_line(err)}", exit_code=2) from None
    finally:
        restore_gh_from_backup(backup)


def compose(task: str = "train", overrides: Sequence[str] = ()) -> Any:
    """The config ``ctbench TASK OVERRIDES`` runs with (no run folder is made, no Hydra runtime is left).

    The ``hydra`` block is resolved into :func:`run_context` and removed; ``names`` holds the choices of
    :data:`NAMED_GROUPS`, as in a run.
    """
    return compose_with_context(task, overrides)[0]


def compose_with_context(task: str = "train", overrides: Sequence[str] = ()) -> tuple[Any, RunContext]:
    """:func:`compose` and the :class:`RunContext` the CLI would give the same command."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    check_group_overrides(overrides)
    cfg = _hydra_compose(task, overrides)
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} (run folder, logger names) resolves against it
    try:
        hc = cfg.hydra
        ctx = RunContext(run_dir=Path(str(hc.run.dir)),
                         choices={k: str(v) for k, v in hc.runtime.choices.items() if v is not None},
                         overrides=tuple(hc.overrides.task), run_dir_given=_names_run_dir(overrides))
        with open_dict(cfg):
            del cfg["hydra"]
        _resolve_hydra_references(cfg)  # no Hydra runtime is left to resolve them later
    finally:
        HydraConfig.instance().cfg = None
    OmegaConf.set_struct(cfg, True)
    return cfg, ctx


def hydra_block(task: str = "train", overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved ``hydra`` block of ``ctbench TASK OVERRIDES`` (launcher, sweep and run folders) as a dict."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    check_group_overrides(overrides)
    cfg = _hydra_compose(task, overrides)
    HydraConfig.instance().set_config(cfg)
    try:
        return OmegaConf.to_container(cfg.hydra, resolve=True)
    finally:
        HydraConfig.instance().cfg = None


def _resolve_hydra_references(cfg: Any) -> None:
    """Replace every value that refers to ``${hydra:...}`` by its value now (the rest stays lazy: tasks fill
    ``dataset.class_names``/``in_channels`` that the model's interpolations then read)."""
    from omegaconf import OmegaConf, open_dict

    def walk(node: Any, path: str) -> list[str]:
        if isinstance(node, dict):
            return [p for k, v in node.items() for p in walk(v, f"{path}.{k}" if path else str(k))]
        if isinstance(node, list):
            return [p for i, v in enumerate(node) for p in walk(v, f"{path}[{i}]")]
        return [path] if isinstance(node, str) and "${hydra:" in node else []

    for path in walk(OmegaConf.to_container(cfg, resolve=False), ""):
        with open_dict(cfg):
            OmegaConf.update(cfg, path, OmegaConf.select(cfg, path), force_add=True)


def run_names(choices: Mapping[str, str]) -> dict[str, str]:
    """``{"model": ..., "loss": ..., "dataset": ...}`` of a run (``custom`` where no config file was chosen)."""
    return {k: str(choices.get(k, "custom")) for k in NAMED_GROUPS}
