"""The survey's architectures (section 3), one module per family, each for 2D and 3D.

``configs/model/NAME.yaml`` is the one list of what exists (``ctbench list models`` reads it), and
:func:`create_model` builds a model by that name from Python with the YAML's ``_target_`` and the
class defaults, for users who do not go through Hydra::

    from ctbench.models import create_model
    net = create_model("deeplabv3p", spatial_dims=3, in_channels=1, out_channels=5)

Every model: ``forward(x [B, in_channels, *spatial]) -> logits [B, out_channels, *spatial]``,
an int ``size_divisor`` (spatial sizes must be multiples of it), one-line
:class:`~ctbench.errors.CTBenchError` for bad input. Modules import lazily, so importing this
package does not import torch.
"""

from __future__ import annotations

from typing import Any

from ctbench.errors import CTBenchError


def model_class(name: str) -> type:
    """The class behind a model name: the ``_target_`` of ``configs/model/NAME.yaml``."""
    from hydra.utils import get_class

    from ctbench.config import CONFIG_DIR, group_choices
    from ctbench.safe_yaml import load_config

    path = CONFIG_DIR / "model" / f"{name}.yaml"
    if not path.is_file():
        raise CTBenchError(f"unknown model '{name}': use one of {', '.join(group_choices('model'))}", exit_code=2)
    return get_class(str(load_config(path)._target_))


def create_model(name: str, spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any):
    """Build model ``name`` with the class defaults (``kwargs`` override widths, ``preset``, ...)."""
    return model_class(name)(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                             **kwargs)


__all__ = ["create_model", "model_class"]
