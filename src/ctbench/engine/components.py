"""Config -> components, without Lightning: ``instantiate``, network and loss.

Every ``_target_`` ctbench calls goes through :func:`instantiate`, which turns Hydra's wrapped
exceptions back into the project's one-line errors. A config read from a file someone else made (a
checkpoint's stored run config) is checked before it reaches this module: against the checkpoint
schema (:mod:`~ctbench.engine.checkpoint_schema`) and the closed allowlist
(:func:`~ctbench.engine.allowlist.check_untrusted`). The user's own command line and config files stay
trusted.

The bottom of the engine: :mod:`~ctbench.engine.checkpoint`, :mod:`~ctbench.engine.segmenter`,
:mod:`~ctbench.engine.module` and :mod:`~ctbench.engine.build` all build through it, so ``ctbench predict``
(network + weights) starts without Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ctbench.errors import CTBenchError, describe

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
        raise CTBenchError(f"checkpoint weights do not fit {what}: {describe(err)[:200]} — use the "
                           "checkpoint with the config it was trained with", exit_code=2) from err
