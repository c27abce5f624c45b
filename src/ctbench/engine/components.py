"""Config -> components, without Lightning: the untrusted-config check, ``instantiate``, network and loss.

Every ``_target_`` ctbench calls goes through :func:`instantiate`, which turns Hydra's wrapped
exceptions back into the project's one-line errors. A config read from a file someone else made (a
checkpoint's stored run config) is *untrusted*: before anything is imported or called,
:func:`check_untrusted` walks it and refuses, with one line naming the key and the target, any
``_target_`` (or ``lightning_module``) that is not a class of ctbench itself or a network, loss,
optimiser or scheduler class of MONAI / ``torch.nn`` / ``torch.optim``, or a Lightning trainer
option; interpolations (``${...}``) are refused too, since resolving them could build new targets.
The user's own command line and config files stay trusted.

The bottom of the engine: :mod:`~ctbench.engine.checkpoint`, :mod:`~ctbench.engine.segmenter`,
:mod:`~ctbench.engine.module` and :mod:`~ctbench.engine.build` all build through it, so ``ctbench predict``
(network + weights) starts without Lightning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from ctbench.errors import CTBenchError

#: library packages whose classes a stored config may name (besides ctbench's own)
LIBRARY_PREFIXES = ("monai.", "torch.nn.", "torch.optim.", "lightning.pytorch.")
_DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")


# ---------------------------------------------------------------------------------------- untrusted


def _library_bases() -> tuple[type, ...]:
    return (torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)


def _allowed_class(target: str) -> bool:
    """``target`` is a class of ctbench, or a network/loss/optimiser/scheduler class of an allowed library,
    or a Lightning trainer option class. Only dotted names under those packages are imported at all."""
    if not _DOTTED.match(target) or not (target.startswith("ctbench.") or target.startswith(LIBRARY_PREFIXES)):
        return False
    from hydra._internal.utils import _locate

    try:
        obj = _locate(target)
    except Exception:  # noqa: BLE001 - any failure to locate means "not an allowed class"
        return False
    if not isinstance(obj, type):
        return False
    module = getattr(obj, "__module__", "") or ""
    if module.startswith("ctbench."):
        return True
    if module.startswith("lightning.pytorch."):
        return True
    return module.startswith(LIBRARY_PREFIXES) and issubclass(obj, _library_bases())


def check_untrusted(node: Any, source: str, path: str = "") -> None:
    """Refuse (one line) a config from ``source`` that names anything but ctbench's own components and
    the library classes its configs use, or that holds an interpolation. Checked before any call."""
    if isinstance(node, Mapping | DictConfig):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key in ("_target_", "lightning_module"):
                if not isinstance(value, str) or not _allowed_class(value):
                    raise CTBenchError(f"refusing {source}: '{where}' names '{value}', which is not a ctbench "
                                       "component nor a MONAI/torch network, loss or optimiser class: load only "
                                       "checkpoints written by ctbench", exit_code=2)
            else:
                check_untrusted(value, source, where)
    elif isinstance(node, list | tuple | ListConfig):
        for i, value in enumerate(node):
            check_untrusted(value, source, f"{path}[{i}]")
    elif isinstance(node, str) and "${" in node:
        raise CTBenchError(f"refusing {source}: '{path}' holds an interpolation ({node[:60]!r}); a stored run "
                           "config is always resolved: load only checkpoints written by ctbench", exit_code=2)


# ---------------------------------------------------------------------------------------- instantiate


def instantiate(node: Any, what: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``; a user error inside keeps its one line, a bad key or
    target becomes one line naming ``what`` (e.g. ``"loss"``) and the cause."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, CTBenchError):
            raise cause from None
        target = node.get("_target_", "?") if isinstance(node, Mapping | DictConfig) else "?"
        if cause is None or isinstance(cause, TypeError | ImportError | AttributeError | ValueError):
            reason = str(cause if cause is not None else exc).splitlines()[0][:200]
            raise CTBenchError(f"cannot build {what} '{target}': {reason} (check the {what}.* keys, "
                               f"`ctbench train --cfg job` shows them)", exit_code=2) from None
        raise


def resolve_class(target: str, what: str) -> type:
    """The class a dotted ``target`` names, or one line saying which key is wrong."""
    from hydra.utils import get_class

    try:
        return get_class(target)
    except Exception as err:  # noqa: BLE001 - Hydra raises several types for a bad path
        raise CTBenchError(f"{what}='{target}' does not name a class: {str(err).splitlines()[0][:160]}",
                           exit_code=2) from None


# ---------------------------------------------------------------------------------------- components


def build_model(cfg: DictConfig) -> torch.nn.Module:
    """The configured network (``cfg.model`` without its ``lightning_module`` key)."""
    node = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    node.pop("lightning_module", None)
    return instantiate(node, "model", _convert_="all")


def build_loss(cfg: DictConfig) -> torch.nn.Module:
    """The configured loss, called as ``loss(logits [B, C, ...], target [B, 1, ...])``."""
    return instantiate(cfg.loss, "loss")


def load_weights(model: torch.nn.Module, state_dict: Mapping[str, Any], what: str) -> None:
    """``model.load_state_dict(state_dict)`` with one line when the weights belong to another network."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise CTBenchError(f"checkpoint weights do not fit {what}: {str(err).splitlines()[0][:200]} — use the "
                           "checkpoint with the config it was trained with") from err
