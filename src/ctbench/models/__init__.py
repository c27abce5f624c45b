"""The survey's architectures (section 3), one module per family, each for 2D and 3D.

``configs/model/NAME.yaml`` is the list of what exists (``ctbench list models`` reads it); this
package's :func:`create_model` builds the same classes by name from Python, with the same keyword
arguments, for users who do not go through Hydra::

    from ctbench.models import create_model
    net = create_model("deeplabv3p", spatial_dims=3, in_channels=1, out_channels=5)

Every model: ``forward(x [B, in_channels, *spatial]) -> logits [B, out_channels, *spatial]``,
an int ``size_divisor`` (spatial sizes must be multiples of it), one-line
:class:`~ctbench.errors.CTBenchError` for bad input. Modules import lazily, so importing this
package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from ctbench.errors import CTBenchError

#: config name -> "module:Class" (the ``_target_`` of ``configs/model/NAME.yaml``)
MODELS: dict[str, str] = {
    "fcn32s": "ctbench.models.fcn:FCN32s",
    "fcn16s": "ctbench.models.fcn:FCN16s",
    "fcn8s": "ctbench.models.fcn:FCN8s",
    "cascaded_fcn": "ctbench.models.cascaded_fcn:CascadedFCN",
    "segnet": "ctbench.models.segnet:SegNet",
    "unet": "ctbench.models.unet:UNet",
    "vnet": "ctbench.models.vnet:VNet",
    "fcdensenet": "ctbench.models.fcdensenet:FCDenseNet",
    "deeplabv1": "ctbench.models.deeplab:DeepLabV1",
    "deeplabv2": "ctbench.models.deeplab:DeepLabV2",
    "deeplabv3": "ctbench.models.deeplab:DeepLabV3",
    "deeplabv3p": "ctbench.models.deeplab:DeepLabV3Plus",
    "pspnet": "ctbench.models.pspnet:PSPNet",
    "drinet": "ctbench.models.drinet:DRINet",
    "attention_unet": "ctbench.models.attention_unet:AttentionUNet",
    "segan": "ctbench.models.segan:SegAN",
}


def model_class(name: str) -> type:
    """The class behind a model name (as in ``configs/model/``)."""
    if name not in MODELS:
        raise CTBenchError(f"unknown model '{name}': use one of {', '.join(MODELS)}", exit_code=2)
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create_model(name: str, spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any):
    """Build model ``name`` with the class defaults (``kwargs`` override widths, ``preset``, ...)."""
    return model_class(name)(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                             **kwargs)


__all__ = ["MODELS", "create_model", "model_class"]
