"""The schema a checkpoint's stored run config is validated against: it may describe a network, nothing else.

``predict``, ``eval`` and ``export`` take from a checkpoint only what describes the trained network (the
model, loss and optimiser blocks, ``dims``, the class names, the preprocessing, the patch sizes and the
sliding-window settings). Every such value is checked here against a type and a bound before anything is
built: a spacing of at least :data:`MIN_SPACING_MM`, flips that are a subset of the three axes, channel
widths and sizes up to a bound, finite numbers, short strings, a bounded depth and length. Data
locations, caches, the voxel cap and output paths are never read from the file (:data:`KEPT`).
Hand-written because the shape of the run config is ctbench's own; no library schema applies.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ctbench.errors import CTBenchError, printable

#: top-level keys taken from a checkpoint; everything else in its run config is dropped unread
KEPT = ("model", "loss", "optim", "dims", "names", "inference", "postprocess", "seed", "fold", "dataset")
#: the dataset keys that describe the network's input (locations, caches and caps come from the command)
DATASET_KEPT = ("name", "class_names", "num_classes", "in_channels", "preprocessing", "patch_size_2d",
                "patch_size_3d", "single_component_classes")

MIN_SPACING_MM, MAX_SPACING_MM = 0.1, 50.0
MAX_WIDTH = 4096          # any integer of a model block: channel widths, kernel sizes, feature counts
MAX_NUMBER = 10_000_000   # any integer elsewhere (loss, optimiser)
MAX_LIST, MAX_DEPTH, MAX_TEXT = 64, 6, 200
MAX_CLASSES, MAX_CHANNELS = 256, 16
MAX_PATCH = {2: 2048, 3: 512}
MAX_SW_BATCH = 1024       # windows per forward pass (a large GPU runs hundreds of 2D slices at once)
BLENDS = ("gaussian", "constant")
WINDOWS_2D = ("patch", "slice")  # inference.window_2d (engine/inference.py)
POSTPROCESS = (None, "crf", "lcc")
INTERPOLATIONS = ("linear", "bspline")
NORMALIZE = ("window", "zscore")
WINDOW_NAMES = ("abdomen", "liver", "lung", "bone", "brain")
#: model keys with a closed set of values (the same tuples as the models', which this module does not import)
MODEL_CHOICES = {"skip": ("concat", "add")}   # ctbench.models.unet.SKIPS
_NAME = re.compile(r"^[\w][\w .+()-]{0,63}$")
_AXES = (("L", "R"), ("P", "A"), ("I", "S"))


class SchemaError(CTBenchError):
    """A stored value outside the schema: one line naming the key, the value and the bound (exit 2)."""

    def __init__(self, source: str, key: str, value: Any, rule: str) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        super().__init__(f"refusing {source}: '{printable(key)}' = {shown}: {rule}", exit_code=2)


def _plain(node: Any, source: str, key: str, max_int: int, depth: int = 0) -> None:
    """Bounded plain data: finite numbers within ``max_int``, short strings, short lists, shallow nesting."""
    if depth > MAX_DEPTH:
        raise SchemaError(source, key, "...", f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, bool) or node is None:
        return
    if isinstance(node, int):
        if abs(node) > max_int:
            raise SchemaError(source, key, node, f"must be at most {max_int} in size")
    elif isinstance(node, float):
        if not math.isfinite(node) or abs(node) > MAX_NUMBER:
            raise SchemaError(source, key, node, f"must be a finite number of at most {MAX_NUMBER} in size")
    elif isinstance(node, str):
        if len(node) > MAX_TEXT:
            raise SchemaError(source, key, node, f"must be a text of at most {MAX_TEXT} characters")
    elif isinstance(node, Mapping):
        if len(node) > MAX_LIST:
            raise SchemaError(source, key, f"{len(node)} keys", f"may hold at most {MAX_LIST} keys")
        for k, v in node.items():
            if not isinstance(k, str) or len(k) > 64:
                raise SchemaError(source, key, k, "keys must be short texts")
            _plain(v, source, f"{key}.{k}", max_int, depth + 1)
    elif isinstance(node, list | tuple):
        if len(node) > MAX_LIST:
            raise SchemaError(source, key, f"{len(node)} items", f"may hold at most {MAX_LIST} items")
        for i, v in enumerate(node):
            _plain(v, source, f"{key}[{i}]", max_int, depth + 1)
    else:
        raise SchemaError(source, key, type(node).__name__, "must be plain data (numbers, texts, lists, mappings)")


def _int(value: Any, source: str, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SchemaError(source, key, value, f"must be a whole number from {low} to {high}")
    return value


def _number(value: Any, source: str, key: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SchemaError(source, key, value, f"must be a number from {low} to {high}")
    return float(value)


def _choice(value: Any, source: str, key: str, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise SchemaError(source, key, value, f"must be one of {', '.join(map(str, choices))}")


def _sizes(value: Any, source: str, key: str, count: int, low: int, high: int) -> None:
    if not isinstance(value, list | tuple) or len(value) != count:
        raise SchemaError(source, key, value, f"must be {count} whole numbers")
    for i, v in enumerate(value):
        _int(v, source, f"{key}[{i}]", low, high)


def _block(cfg: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = cfg.get(key)
    if not isinstance(value, Mapping):
        raise SchemaError(source, key, value, "must be a mapping")
    return value


def validate_preprocessing(pre: Any, source: str, key: str = "dataset.preprocessing") -> None:
    """Orientation, spacing (>= 0.1 mm), interpolation, HU window and normalisation of the input."""
    if not isinstance(pre, Mapping):
        raise SchemaError(source, key, pre, "must be a mapping")
    unknown = set(pre) - {"orientation", "spacing", "interpolation", "window", "normalize", "crop_foreground"}
    if unknown:
        raise SchemaError(source, f"{key}.{sorted(unknown)[0]}", pre[sorted(unknown)[0]], "is not a preprocessing key")
    codes = pre.get("orientation")
    if not (isinstance(codes, str) and len(codes) == 3
            and sorted(next((i for i, pair in enumerate(_AXES) if c in pair), 9) for c in codes) == [0, 1, 2]):
        raise SchemaError(source, f"{key}.orientation", codes, "must be 3 axis codes, one of L/R, P/A, I/S each")
    spacing = pre.get("spacing")
    if not isinstance(spacing, list | tuple) or len(spacing) != 3:
        raise SchemaError(source, f"{key}.spacing", spacing, "must be 3 spacings in mm")
    for i, s in enumerate(spacing):
        _number(s, source, f"{key}.spacing[{i}]", MIN_SPACING_MM, MAX_SPACING_MM)
    _choice(pre.get("interpolation", "linear"), source, f"{key}.interpolation", INTERPOLATIONS)
    _choice(pre.get("normalize"), source, f"{key}.normalize", NORMALIZE)
    window = pre.get("window")
    if isinstance(window, list | tuple):
        if len(window) != 2:
            raise SchemaError(source, f"{key}.window", window, "must be a window name or [lower, upper] HU")
        low, high = (_number(v, source, f"{key}.window", -5000.0, 50000.0) for v in window)
        if not low < high:
            raise SchemaError(source, f"{key}.window", window, "the lower bound must be below the upper")
    else:
        _choice(window, source, f"{key}.window", WINDOW_NAMES)
    _choice(pre.get("crop_foreground", True), source, f"{key}.crop_foreground", (True, False))


def validate_inference(cfg: Mapping[str, Any], source: str) -> None:
    """``dims``, the sliding-window settings and ``postprocess``: bounded work per image."""
    _choice(cfg.get("dims"), source, "dims", (2, 3))
    _choice(cfg.get("postprocess"), source, "postprocess", POSTPROCESS)
    if "inference" not in cfg:
        return
    inf = _block(cfg, "inference", source)
    _number(inf.get("overlap"), source, "inference.overlap", 0.0, 0.9)
    _choice(inf.get("blend"), source, "inference.blend", BLENDS)
    _choice(inf.get("window_2d", "patch"), source, "inference.window_2d", WINDOWS_2D)
    for d in (2, 3):
        _int(inf.get(f"sw_batch_size_{d}d"), source, f"inference.sw_batch_size_{d}d", 1, MAX_SW_BATCH)
    flips = inf.get("tta_flips")
    if not isinstance(flips, list | tuple) or len(set(map(repr, flips))) != len(flips) or any(
            isinstance(a, bool) or a not in (0, 1, 2) for a in flips):
        raise SchemaError(source, "inference.tta_flips", flips, "must be a subset of the axes 0, 1, 2, each once")


def validate_dataset(dataset: Any, source: str, classes_later: bool = False) -> None:
    """Class names (and which are one connected structure), channel and class counts, preprocessing and patch
    sizes of the network's input
    (``classes_later``: a command's own dataset whose class names its reader fills in, e.g. from dataset.json)."""
    if not isinstance(dataset, Mapping):
        raise SchemaError(source, "dataset", dataset, "must be a mapping")
    names = dataset.get("class_names")
    if names is not None or not classes_later:
        if not isinstance(names, list | tuple) or not 2 <= len(names) <= MAX_CLASSES or not all(
                isinstance(n, str) and _NAME.match(n) for n in names) or len(set(names)) != len(names):
            raise SchemaError(source, "dataset.class_names", names, f"must be 2 to {MAX_CLASSES} distinct short "
                              "names (letters, digits, space, . + - ( ))")
        if dataset.get("num_classes") is not None:
            _int(dataset.get("num_classes"), source, "dataset.num_classes", len(names), len(names))
    # which classes they are is checked where postprocess=lcc reads them (engine/postprocess.py): predict's own
    # dataset may lend an older checkpoint, stored without them, a list of other class names
    single = dataset.get("single_component_classes")
    if single is not None and (not isinstance(single, list | tuple) or not len(single) <= MAX_CLASSES
                               or len(set(map(repr, single))) != len(single)
                               or not all(isinstance(c, str) and _NAME.match(c) for c in single)):
        raise SchemaError(source, "dataset.single_component_classes", single, "must be distinct short class names")
    if dataset.get("in_channels") is not None or not classes_later:
        _int(dataset.get("in_channels", 1), source, "dataset.in_channels", 1, MAX_CHANNELS)
    validate_preprocessing(dataset.get("preprocessing"), source)
    for d in (2, 3):
        _sizes(dataset.get(f"patch_size_{d}d"), source, f"dataset.patch_size_{d}d", d, 1, MAX_PATCH[d])
    name = dataset.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SchemaError(source, "dataset.name", name, "must be a short name")


def validate_stored(stored: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The part of a checkpoint's run config that describes the network, checked; the rest is dropped."""
    kept = {k: stored[k] for k in KEPT if k in stored}
    for key in ("model", "loss", "optim", "inference"):
        if key in kept or key in ("model", "loss"):
            _plain(_block(kept, key, source), source, key, MAX_WIDTH if key == "model" else MAX_NUMBER)
    for key in ("model", "loss"):
        if not isinstance(kept[key].get("_target_"), str):
            raise SchemaError(source, f"{key}._target_", kept[key].get("_target_"), "must name the class to build")
    for key, choices in MODEL_CHOICES.items():
        if key in kept["model"]:
            _choice(kept["model"][key], source, f"model.{key}", choices)
    for key in ("seed", "fold"):
        if key in kept:
            _int(kept[key], source, key, 0, 2**32 - 1)
    names = kept.get("names")
    if names is not None:
        if not isinstance(names, Mapping) or not all(isinstance(v, str) and _NAME.match(v) for v in names.values()):
            raise SchemaError(source, "names", names, "must map model/loss/dataset to short names")
    dataset = _block(kept, "dataset", source)
    kept["dataset"] = {k: dataset[k] for k in DATASET_KEPT if k in dataset}
    validate_run_config(kept, source)
    return kept


def validate_run_config(cfg: Mapping[str, Any], source: str, classes_later: bool = False) -> None:
    """The network description of a run config: ``dims``, ``inference``, ``postprocess`` and the dataset's
    network keys (of a checkpoint, or a command's run config with the checkpoint's values in it)."""
    validate_inference(cfg, source)
    validate_dataset(cfg.get("dataset"), source, classes_later)


def validate_state(ckpt: Mapping[str, Any], source: str) -> None:
    """``state_dict`` maps names to tensors; ``ctbench_zscore`` (when present) is a finite mean and positive std."""
    import torch

    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in state.items()):
        raise SchemaError(source, "state_dict", type(state).__name__, "must map parameter names to tensors")
    zscore = ckpt.get("ctbench_zscore")
    if zscore is not None:
        if not isinstance(zscore, list | tuple) or len(zscore) != 2:
            raise SchemaError(source, "ctbench_zscore", zscore, "must be [mean, std] in HU")
        _number(zscore[0], source, "ctbench_zscore[0]", -5000.0, 50000.0)
        _number(zscore[1], source, "ctbench_zscore[1]", 1e-3, 50000.0)
