"""The one YAML loader for every YAML file ctbench reads itself (claims, run folders' ``resolved_config.yaml``
and ``.hydra/*.yaml``, config files): bounded expansion.

YAML anchors and aliases let a few hundred bytes expand to gigabytes ("billion laughs": nested aliases
each repeating the one before); PyYAML's ``safe_load`` and ``OmegaConf.load`` expand them all. Here an
alias is refused with one line (nothing ctbench writes or ships uses one), the file size is capped, and
so is the nesting depth. A subclass of PyYAML's ``SafeLoader``, because PyYAML has no option for this.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ctbench.errors import CTBenchError

#: largest YAML file read (a run's resolved config is ~5 KB; a claims file under 2 KB)
MAX_YAML_BYTES = 4_000_000
#: deepest nesting of mappings and lists
MAX_YAML_DEPTH = 64


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses aliases and nesting deeper than :data:`MAX_YAML_DEPTH`."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"an alias (*{event.anchor}) at line {event.start_mark.line + 1}: YAML anchors and "
                                 "aliases are refused (they can expand a small file without bound); write the "
                                 "values out")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"nesting deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml_text(text: str, what: str) -> Any:
    """The plain data of YAML ``text`` (``what`` names it in the one-line error)."""
    if len(text) > MAX_YAML_BYTES:
        raise CTBenchError(f"{what} is {len(text)} bytes, over the {MAX_YAML_BYTES}-byte cap for a YAML file: "
                           "it is not a ctbench file", exit_code=2)
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise CTBenchError(f"cannot read {what}: {reason}", exit_code=2) from None
    except RecursionError:
        raise CTBenchError(f"cannot read {what}: nested too deeply", exit_code=2) from None


def load_yaml(path: str | os.PathLike) -> Any:
    """The plain data of the YAML file ``path``: aliases refused, size and depth capped."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise CTBenchError(f"{path} is {size} bytes, over the {MAX_YAML_BYTES}-byte cap for a YAML file: it is "
                               "not a ctbench file", exit_code=2)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CTBenchError(f"cannot read {path}: {err}", exit_code=2) from None
    return load_yaml_text(text, str(path))


def load_config(path: str | os.PathLike) -> Any:
    """``OmegaConf.load(path)`` through :func:`load_yaml`: a ``DictConfig`` (or ``ListConfig``)."""
    from omegaconf import OmegaConf

    data = load_yaml(path)
    return OmegaConf.create(data if data is not None else {})
