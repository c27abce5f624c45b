"""``ctbench export ckpt_path=... format=onnx|torchscript output=FILE``: a trained network that runs without
ctbench (ONNX Runtime, or ``torch.jit.load``), with the preprocessing it expects written beside it.

The graph maps ``image`` ``[B, C, *spatial]`` (float32, preprocessed as the JSON says) to ``logits``
``[B, classes, *spatial]``; batch and spatial axes are dynamic (each spatial side a multiple of
``size_divisor``). The written file is run once at the traced patch size and once at a larger one and
compared with the checkpoint's network (1e-4): a graph that only reproduces the traced size (global
pooling traced as constants) is kept with ``fixed_spatial_shape`` in the JSON, to be run by sliding windows
of that size. Softmax, sliding windows, resampling back to the scanner grid and post-processing
(dense CRF, largest component) stay outside the graph. ``FILE.json`` holds orientation, target spacing,
interpolation, HU window, normalisation (with the z-score statistics of the training set), the class
names and the sliding-window settings of the run. Models that cannot be exported: docs/export.md.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ctbench.atomic import atomic_write, atomic_write_json
from ctbench.errors import CTBenchError, describe

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17
TOLERANCE = 1e-4  # largest logit difference between the exported graph and the network

#: networks whose traced graph would be wrong without failing: their forward depends on the data
DATA_DEPENDENT = {"CascadedFCN": "stage 2 crops the box that stage 1 finds in each image; a traced graph keeps "
                                 "the example's box"}


def example_input(model: torch.nn.Module, run_cfg: DictConfig) -> torch.Tensor:
    """A ``[1, C, *patch]`` tensor of the run's training patch size (the shape the graph is traced with)."""
    dims = int(run_cfg.dims)
    patch = [int(p) for p in run_cfg.dataset[f"patch_size_{dims}d"]]
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, int(run_cfg.dataset.get("in_channels", 1)), *patch, generator=generator)


def export_model(model: torch.nn.Module, example: torch.Tensor, fmt: str, output: Path) -> None:
    """Write ``model`` (eval mode, traced with ``example``) as ONNX or TorchScript with dynamic batch and
    spatial axes. A network whose forward depends on tensor values or returns several outputs is refused."""
    model = model.eval()
    reason = DATA_DEPENDENT.get(type(model).__name__)
    if reason:
        raise CTBenchError(f"{type(model).__name__} cannot be exported: {reason} (docs/export.md)")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python values; the test compares outputs
            if not isinstance(model(example), torch.Tensor):
                raise CTBenchError(f"{type(model).__name__} returns several outputs: export supports one logits "
                                   "tensor (docs/export.md)")
            buffer = io.BytesIO()
            if fmt == "onnx":
                axes = {0: "batch", **{2 + i: f"spatial_{i}" for i in range(example.dim() - 2)}}
                torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=["image"],
                                  output_names=["logits"], dynamic_axes={"image": axes, "logits": axes},
                                  opset_version=ONNX_OPSET)
            else:
                torch.jit.save(torch.jit.trace(model, example), buffer)
    except CTBenchError:
        raise
    except Exception as err:  # the tracer and exporter raise many types for graphs they cannot express
        raise CTBenchError(f"{type(model).__name__} cannot be exported as {fmt}: "
                           f"{describe(err)[:160]} (docs/export.md lists the exportable models)") from err
    atomic_write(output, lambda fh: fh.write(buffer.getvalue()))


def run_exported(output: Path, fmt: str, image: torch.Tensor) -> torch.Tensor:
    """Logits of the written file for ``image``, by ONNX Runtime or ``torch.jit.load`` (not by ctbench's network)."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(["logits"], {"image": image.numpy()})[0])
    with torch.no_grad():
        return torch.jit.load(str(output), map_location="cpu")(image)


def verify_export(model: torch.nn.Module, example: torch.Tensor, fmt: str, output: Path) -> bool:
    """Whether the written graph reproduces ``model`` at the traced size (else an error) and at a larger one
    (else its spatial shape is fixed: returns False)."""
    step = int(getattr(model, "size_divisor", 1))
    larger = torch.randn(*example.shape[:2], example.shape[2] + step, *example.shape[3:],
                         generator=torch.Generator().manual_seed(1))
    agree = []
    for image in (example, larger):
        with torch.no_grad():
            expected = model(image)
        try:
            got = run_exported(output, fmt, image)
            agree.append(got.shape == expected.shape and float((got - expected).abs().max()) <= TOLERANCE)
        except Exception:  # a graph with traced shapes fails on another size in several ways
            agree.append(False)
    if not agree[0]:
        output.unlink()
        raise CTBenchError(f"the {fmt} export of {type(model).__name__} does not reproduce its logits within "
                           f"{TOLERANCE} (docs/export.md lists the exportable models)")
    return agree[1]


def preprocessing_contract(run_cfg: DictConfig, ckpt: dict[str, Any], checkpoint: Path, model: torch.nn.Module,
                           fmt: str, fixed_shape: list[int] | None) -> dict[str, Any]:
    """What a caller must do to an image before the graph and to the logits after it, from the run config."""
    from ctbench.data.transforms import window_bounds

    pre = OmegaConf.to_container(run_cfg.dataset.preprocessing, resolve=True)
    dims = int(run_cfg.dims)
    zscore = ckpt.get("ctbench_zscore")
    lower, upper = window_bounds(pre["window"])
    return {
        "format": fmt,
        "input": {"name": "image", "shape": ["batch", "channels", "x", "y", "z"][: 2 + dims], "dtype": "float32",
                  "channels": int(run_cfg.dataset.get("in_channels", 1)),
                  "spatial_multiple_of": int(getattr(model, "size_divisor", 1)),
                  "fixed_spatial_shape": fixed_shape},
        "output": {"name": "logits", "shape": ["batch", "classes", "x", "y", "z"][: 2 + dims],
                   "then": "softmax over axis 1, arg-max = label"},
        "classes": list(run_cfg.dataset.class_names),
        "dims": dims,
        "preprocessing": {
            "axes": "x, y, z of the image reoriented to `orientation`: nibabel's array order (SimpleITK's "
                    "GetArrayFromImage gives z, y, x: transpose it)",
            "orientation": pre["orientation"],
            "spacing_mm": list(pre["spacing"]),
            "interpolation": pre.get("interpolation", "linear"),
            "window_hu": [lower, upper],
            "normalize": pre["normalize"],
            "normalize_formula": ("clip(hu, lower, upper) then (hu - lower) / (upper - lower)"
                                  if pre["normalize"] == "window" else
                                  "clip(hu, lower, upper) then (hu - mean) / std"),
            "zscore": {"mean": zscore[0], "std": zscore[1]} if zscore else None,
            "crop_foreground": bool(pre.get("crop_foreground", True)),
        },
        "inference": {"dims": dims, "roi": [int(p) for p in run_cfg.dataset[f"patch_size_{dims}d"]],
                      "overlap": float(run_cfg.inference.overlap), "blend": str(run_cfg.inference.blend),
                      "window_2d": str(run_cfg.inference.get("window_2d", "patch")),
                      "note": "dims=2: the network sees axial slices [B, C, x, y] of the 3D volume"},
        "checkpoint": {"name": checkpoint.name, "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()},
        "model": str(run_cfg.get("names", {}).get("model", run_cfg.model._target_)),
    }


def export(cfg: DictConfig, ctx: Any = None) -> Path:
    """``ctbench export``: the checkpoint's network as ``output`` plus ``output`` with ``.json`` (the contract)."""
    from ctbench.engine.checkpoint import model_from_checkpoint, trusted_classes

    fmt = str(cfg.get("format") or "")
    if fmt not in FORMATS:
        raise CTBenchError(f"format={fmt or 'null'}: use format=onnx or format=torchscript")
    if not cfg.get("ckpt_path"):
        raise CTBenchError("no checkpoint given: pass ckpt_path=RUN_DIR/checkpoints/best.ckpt")
    if not cfg.get("output"):
        raise CTBenchError(f"no output file given: pass output=model.{'onnx' if fmt == 'onnx' else 'pt'}")
    output, checkpoint = Path(cfg.output), Path(cfg.ckpt_path)
    contract = output.with_suffix(".json")
    existing = [p for p in (output, contract) if p.exists()]
    if existing and not cfg.get("overwrite", False):
        raise CTBenchError(f"{existing[0]} already exists: add overwrite=true to replace it or choose another output")
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401  (torch.onnx.export needs it)
        except ImportError:
            raise CTBenchError("format=onnx needs the onnx package: pip install 'ctbench[export]'") from None
    model, run_cfg, ckpt = model_from_checkpoint(checkpoint, trusted_classes(cfg, ctx))
    example = example_input(model, run_cfg)
    export_model(model, example, fmt, output)
    fixed = None if verify_export(model, example, fmt, output) else list(example.shape[2:])
    atomic_write_json(contract, preprocessing_contract(run_cfg, ckpt, checkpoint, model, fmt, fixed))
    print(f"wrote {output} and {contract}" + (f"; the graph takes only spatial shape {fixed}: run it by sliding "
                                             "windows of that size" if fixed else ""))
    return output
