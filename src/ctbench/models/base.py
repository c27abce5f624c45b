"""What every ctbench network shares: input checks, ``size_divisor``, layer factories, weight loading.

Every model in :mod:`ctbench.models` is an ``nn.Module`` called as ``model(x)`` with
``x: [B, in_channels, *spatial]`` and returning logits ``[B, out_channels, *spatial]`` of the same
spatial size. Each instance carries

- ``size_divisor`` (int): every spatial size of an input must be a multiple of it (the data pipeline
  pads to it and crops back; 1 means any size);
- ``min_size`` (int): the smallest spatial size the network's depth allows.

A model that needs its own LightningModule (SegAN, cascaded FCN) names it by ``lightning_module`` in
its ``configs/model/NAME.yaml``.

Bad input (wrong dimensionality, channel count, a size that is not a multiple of ``size_divisor`` or
too small for the depth) raises :class:`ctbench.errors.CTBenchError` with one line naming the model,
the constraint and the fix. Layers are chosen by ``spatial_dims`` through MONAI's factories, so each
network is written once for 2D and 3D.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Dropout, Norm, Pool
from torch import nn

from ctbench.errors import CTBenchError

NORMS = ("batch", "instance", "group", "none")


def check_spatial_dims(name: str, spatial_dims: int, supported: Iterable[int] = (2, 3)) -> None:
    """Raise a :class:`CTBenchError` (exit code 2) if ``name`` cannot be built for ``spatial_dims``."""
    supported = tuple(supported)
    if spatial_dims not in supported:
        allowed = " or ".join(f"dims={d}" for d in supported)
        raise CTBenchError(
            f"model '{name}' supports {allowed}, not dims={spatial_dims}: run with {allowed.split(' or ')[0]}"
            " or pick another model (ctbench list models)",
            exit_code=2,
        )


class SegmentationNet(nn.Module):
    """Base class: stores the common arguments and checks every input before ``_forward``.

    Subclasses set ``self.size_divisor`` / ``self.min_size`` in ``__init__`` and implement
    ``_forward(x)``.
    """

    model_name: str = "model"
    supported_dims: tuple[int, ...] = (2, 3)

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        check_spatial_dims(self.model_name, spatial_dims, self.supported_dims)
        if in_channels < 1 or out_channels < 1:
            raise CTBenchError(
                f"model '{self.model_name}' needs in_channels >= 1 and out_channels >= 1, got "
                f"{in_channels} and {out_channels}: check dataset.in_channels and dataset.num_classes",
                exit_code=2,
            )
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.size_divisor = 1
        self.min_size = 1

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a one-line :class:`CTBenchError` if ``x`` does not fit this network."""
        name, d = self.model_name, self.spatial_dims
        if x.ndim != d + 2:
            axes = "[B, C, H, W]" if d == 2 else "[B, C, D, H, W]"
            raise CTBenchError(
                f"model '{name}' was built with dims={d} and expects {axes}, got a tensor of shape "
                f"{tuple(x.shape)}: set dims={x.ndim - 2} or feed {d}D patches"
            )
        if x.shape[1] != self.in_channels:
            raise CTBenchError(
                f"model '{name}' expects {self.in_channels} input channel(s), got {x.shape[1]}: set "
                f"dataset.in_channels={x.shape[1]} (or model.in_channels)"
            )
        spatial = tuple(x.shape[2:])
        low = max(self.min_size, 1)
        if any(s < low for s in spatial):
            raise CTBenchError(
                f"model '{name}' needs every spatial size >= {low} for its depth, got {spatial}: "
                f"use a larger dataset.patch_size or fewer levels"
            )
        k = self.size_divisor
        if any(s % k for s in spatial):
            fix = tuple(int(math.ceil(s / k) * k) for s in spatial)
            raise CTBenchError(
                f"model '{name}' needs every spatial size to be a multiple of {k}, got {spatial}: "
                f"pad to {fix} (the data pipeline does this) or change the patch size"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# layer factories (dimension-agnostic)


def conv(dims: int, cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1,
         bias: bool = True, padding: int | None = None, groups: int = 1) -> nn.Module:
    """A ``dims``-D convolution, 'same' padding by default (``dilation * (kernel - 1) // 2``)."""
    if padding is None:
        padding = dilation * (kernel - 1) // 2
    return Conv[Conv.CONV, dims](cin, cout, kernel_size=kernel, stride=stride, padding=padding,
                                 dilation=dilation, bias=bias, groups=groups)


def conv_transpose(dims: int, cin: int, cout: int, kernel: int = 2, stride: int = 2,
                   padding: int = 0, bias: bool = True) -> nn.Module:
    return Conv[Conv.CONVTRANS, dims](cin, cout, kernel_size=kernel, stride=stride, padding=padding,
                                      bias=bias)


def norm_layer(norm: str, dims: int, channels: int) -> nn.Module:
    """``batch`` | ``instance`` (affine) | ``group`` (up to 8 groups) | ``none``."""
    if norm == "batch":
        return Norm[Norm.BATCH, dims](channels)
    if norm == "instance":
        return Norm[Norm.INSTANCE, dims](channels, affine=True)
    if norm == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if norm == "none":
        return nn.Identity()
    raise CTBenchError(f"unknown norm '{norm}': use one of {', '.join(NORMS)}", exit_code=2)


def max_pool(dims: int, kernel: int = 2, stride: int | None = None, padding: int = 0,
             return_indices: bool = False) -> nn.Module:
    return Pool[Pool.MAX, dims](kernel_size=kernel, stride=stride or kernel, padding=padding,
                                return_indices=return_indices)


def adaptive_avg_pool(dims: int, size: int) -> nn.Module:
    return Pool[Pool.ADAPTIVEAVG, dims](size)


def max_unpool(dims: int, kernel: int = 2) -> nn.Module:
    return (nn.MaxUnpool2d if dims == 2 else nn.MaxUnpool3d)(kernel_size=kernel, stride=kernel)


def dropout_layer(dims: int, p: float) -> nn.Module:
    """Channel dropout (``Dropout2d``/``Dropout3d``), or identity when ``p == 0``."""
    return Dropout[Dropout.DROPOUT, dims](p) if p > 0 else nn.Identity()


class ConvNormAct(nn.Sequential):
    """conv -> norm -> ReLU (bias only without a norm)."""

    def __init__(self, dims: int, cin: int, cout: int, kernel: int = 3, stride: int = 1,
                 dilation: int = 1, norm: str = "batch", act: bool = True) -> None:
        layers = [conv(dims, cin, cout, kernel, stride, dilation, bias=norm == "none"),
                  norm_layer(norm, dims, cout)]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DeepSupervisionHeads(nn.Module):
    """Deep supervision (Lee et al. 2015, "Deeply-Supervised Nets"; nnU-Net's decoder outputs): a 1x1
    convolution to class logits on each listed decoder level, finest first.

    Each level's output is read by a forward hook while the network trains, so MONAI's networks need no
    change. ``heads(logits)`` returns ``[logits, head_1(level_1), ...]``: full resolution first, as
    :func:`ctbench.losses.deep_supervision.deep_supervision_loss` expects.

    Args:
        dims: 2 or 3.
        levels: ``(decoder module, its output channels)`` from the finest level below full resolution
            to the coarsest; channels ``None``: the module already outputs class logits (a network's
            own per-level heads), taken as they are.
        out_channels: number of classes.
    """

    def __init__(self, dims: int, levels: Sequence[tuple[nn.Module, int | None]], out_channels: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Identity() if channels is None else conv(dims, channels, out_channels, 1)
                                   for _, channels in levels)
        self._features: list[torch.Tensor | None] = [None] * len(levels)
        for i, (module, _) in enumerate(levels):
            module.register_forward_hook(partial(self._keep, i))

    def _keep(self, i: int, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if self.training:
            self._features[i] = output

    def forward(self, logits: torch.Tensor) -> list[torch.Tensor]:
        features, self._features = self._features, [None] * len(self._features)
        return [logits, *(head(f) for head, f in zip(self.heads, features, strict=True))]


class DeepSupervisedNet(SegmentationNet):
    """A network held in ``self.net`` whose decoder levels can feed :class:`DeepSupervisionHeads` (the U-Net
    family): with ``deep_supervision`` it returns the list of logits while training, a tensor otherwise."""

    def _finish(self, spatial_dims: int, levels: Sequence[tuple[nn.Module, int | None]], out_channels: int,
                deep_supervision: bool, pretrained: str | Path | None) -> None:
        """Attach the heads (when asked), set ``min_size`` and load ``pretrained`` weights."""
        self.deep_supervision = DeepSupervisionHeads(spatial_dims, levels, out_channels) if deep_supervision else None
        self.min_size = self.size_divisor
        if pretrained:
            load_pretrained(self, pretrained, self.model_name)

    def _forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        logits = self.net(x)
        if self.deep_supervision is not None and self.training:
            return self.deep_supervision(logits)
        return logits


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(Bi/tri)linear resize of feature maps or logits to ``size`` (DeepLab/PSPNet upsampling)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


def bilinear_kernel_(weight: torch.Tensor) -> torch.Tensor:
    """Initialise a transposed-conv weight ``[Cin, Cout, k, ...]`` to (bi/tri)linear upsampling (FCN)."""
    k = weight.shape[2]
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d
    for _ in range(weight.ndim - 3):
        filt = filt[..., None] * filt1d
    with torch.no_grad():
        weight.zero_()
        for i in range(min(weight.shape[0], weight.shape[1])):
            weight[i, i] = filt
    return weight


def parameter_count(model: nn.Module) -> int:
    """Number of parameters of ``model`` (trainable or not), as reported in papers' tables."""
    return sum(p.numel() for p in model.parameters())


def preset_values(name: str, preset: str | None, presets: dict[str, dict], given: dict) -> dict:
    """Merge a named paper preset under the explicitly given keyword arguments.

    ``given`` holds the constructor's values; a preset replaces them (presets name a paper's
    configuration, so they win over the small CPU defaults).
    """
    if preset is None or preset == "default":
        return given
    if preset not in presets:
        raise CTBenchError(
            f"model '{name}' has no preset '{preset}': use one of {', '.join(['default', *presets])}",
            exit_code=2,
        )
    return {**given, **presets[preset]}


# ---------------------------------------------------------------------------------------------
# transfer learning: local weights files, 2D -> 3D inflation


def _adapt_tensor(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    """Make ``src`` fit ``dst``'s shape: FC matrix -> conv, 2D -> 3D inflation, RGB -> N channels.

    Returns ``None`` when no rule applies.
    """
    if src.shape == dst.shape:
        return src
    # a fully connected weight stored as a matrix (VGG fc6 [4096, 25088]) -> a 2D conv kernel
    if src.ndim == 2 and dst.ndim == 4 and src.numel() == dst.numel():
        src = src.reshape(dst.shape)
    elif src.ndim == 2 and dst.ndim == 5 and src.numel() * dst.shape[2] == dst.numel():
        src = src.reshape(dst.shape[0], dst.shape[1], *dst.shape[3:])
    # a 2D kernel [O, I, kh, kw] -> 3D [O, I, kd, kh, kw]: repeat along depth, divide by kd (I3D)
    if src.ndim == 4 and dst.ndim == 5:
        kd = dst.shape[2]
        src = src.unsqueeze(2).repeat(1, 1, kd, 1, 1) / kd
    if src.shape == dst.shape:
        return src
    # first conv: ImageNet RGB input channels -> the CT's channel count (mean, rescaled)
    if src.ndim == dst.ndim > 2 and src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:]:
        mean = src.mean(dim=1, keepdim=True)
        return mean.repeat(1, dst.shape[1], *([1] * (src.ndim - 2))) * (src.shape[1] / dst.shape[1])
    return None


def load_pretrained(module: nn.Module, path: str | Path, model_name: str = "model",
                    aliases: dict[str, str] | None = None) -> list[str]:
    """Load a local ``state_dict`` file (``torch.save``) into ``module``; never downloads.

    A saved key matches a parameter of ``module`` as it is, without a leading ``model.``/``net.``/
    ``encoder.``/``backbone.`` prefix, or with ``encoder.`` added (so a bare torchvision-style encoder
    ``state_dict`` loads into a whole network); ``aliases`` renames key prefixes first (e.g. VGG's
    ``classifier.0.`` -> ``fc6.``). A Lightning checkpoint's ``"state_dict"`` is unwrapped. Tensors are adapted where the shapes differ in a known
    way: an FC matrix reshaped to a conv kernel, a 2D kernel inflated to 3D (repeated along the new
    axis and divided by its length), RGB first-layer weights averaged to the CT channel count.
    Keys the module lacks (e.g. a classifier ``fc.*``) and head tensors whose shape differs (another
    class count) are ignored; an encoder tensor that does not fit is an error.

    Returns:
        the names that were loaded.

    Raises:
        CTBenchError: missing file, unreadable file, a shape that cannot be adapted, or no key matched.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CTBenchError(f"model '{model_name}': pretrained weights file {path} not found: "
                           "give model.pretrained=PATH to a local torch.save(state_dict) file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is the user's file
        raise CTBenchError(f"model '{model_name}': cannot read pretrained weights {path} "
                           f"({type(exc).__name__}): save a plain state_dict with torch.save") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CTBenchError(f"model '{model_name}': {path} holds a {type(state).__name__}, not a state_dict")
    target = module.state_dict()
    prefixes = ("model.", "net.", "encoder.", "backbone.")
    loaded: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    has_encoder = any(k.startswith("encoder.") for k in target)
    for key, value in state.items():
        if not torch.is_tensor(value):
            continue
        renamed = key
        for old, new in (aliases or {}).items():
            if renamed.startswith(old):
                renamed = new + renamed[len(old):]
        candidates = [renamed, "encoder." + renamed]
        stripped = renamed
        while any(stripped.startswith(p) for p in prefixes):
            stripped = stripped.split(".", 1)[1]
            candidates += [stripped, "encoder." + stripped]
        for name in candidates:
            if name in target:
                adapted = _adapt_tensor(value, target[name])
                if adapted is None and has_encoder and not name.startswith("encoder."):
                    skipped.append(key)  # a head for another class count: keep the fresh one
                    break
                if adapted is None:
                    raise CTBenchError(
                        f"model '{model_name}': pretrained tensor '{key}' has shape {tuple(value.shape)}, "
                        f"the encoder needs {tuple(target[name].shape)}: use weights for the same width preset"
                    )
                loaded[name] = adapted.to(target[name].dtype)
                break
    if not loaded:
        raise CTBenchError(
            f"model '{model_name}': no tensor in {path} matches the encoder's parameter names "
            f"(e.g. '{next(iter(target))}'): save the encoder's state_dict or rename the keys"
        )
    module.load_state_dict(loaded, strict=False)
    return sorted(loaded)
