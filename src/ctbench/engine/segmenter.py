"""A trained network with the inference its run config names, without Lightning.

:class:`Segmenter` is what validation, test and ``ctbench predict`` share: sliding-window class
probabilities (with test-time flips), the dense CRF when ``postprocess=crf``, resampling onto the input
file's grid and the largest-component clean-up when ``postprocess=lcc``. ``SegmentationModule`` holds
one around its network; ``ctbench predict`` builds one from a checkpoint directly, so it never imports
Lightning (~1.5-4 s of start-up on a 2-core CPU, docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from ctbench.engine.checkpoint import network_weights
from ctbench.engine.components import build_model, load_weights
from ctbench.engine.inference import SlidingWindowPredictor, to_original_grid
from ctbench.engine.postprocess import largest_component_per_class, single_component_classes


class Segmenter:
    """``model`` plus the run config's inference settings (``inference``, ``postprocess``, ``dims``).

    Args:
        model: the network (shared, not copied: a LightningModule trains the same object).
        cfg: the composed run config.
    """

    def __init__(self, model: torch.nn.Module, cfg: DictConfig) -> None:
        self.model, self.cfg = model, cfg
        dims = int(cfg.dims)
        inf = cfg.inference
        self.predictor = SlidingWindowPredictor(
            roi=list(cfg.dataset[f"patch_size_{dims}d"]), overlap=inf.overlap,
            sw_batch_size=inf[f"sw_batch_size_{dims}d"], mode=inf.blend, tta_flips=list(inf.tta_flips),
            window_2d=str(inf.get("window_2d", "patch")))
        self.crf: dict[str, float] = {}
        self.lcc = single_component_classes(cfg.dataset) if cfg.get("postprocess") == "lcc" else []
        if cfg.get("postprocess") == "crf":  # crf.*: the weights ``ctbench eval`` sets (configs/eval.yaml)
            from ctbench.models.crf import crf_settings

            self.crf = crf_settings(cfg.get("crf"))

    @classmethod
    def from_checkpoint(cls, cfg: DictConfig, state_dict: Mapping[str, Any]) -> Segmenter:
        """The network of ``cfg`` with the ``model.*`` weights of a ctbench checkpoint's ``state_dict``."""
        model = build_model(cfg)
        load_weights(model, network_weights({"state_dict": state_dict}), f"model '{cfg.model._target_}'")
        return cls(model.eval(), cfg)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def probs(self, image: torch.Tensor) -> torch.Tensor:
        """Whole-volume class probabilities ``[B, C, *spatial]``, refined by the dense CRF when ``postprocess=crf``."""
        probs = self.predictor(self.model, image)
        if self.cfg.get("postprocess") == "crf":
            from ctbench.models.crf import dense_crf

            plain = torch.as_tensor(image).as_subclass(torch.Tensor).to(probs.device)
            probs = dense_crf(probs, plain, spacing=list(self.cfg.dataset.preprocessing.spacing), **self.crf)
        return probs

    def labels(self, probs: torch.Tensor, affine: torch.Tensor, original_affine: Any,
               original_shape: Sequence[int]) -> np.ndarray:
        """One case's ``[C, *spatial]`` probabilities as a label map on the input file's grid, post-processed
        (``postprocess=lcc``: the largest connected component of each ``dataset.single_component_classes``)."""
        label = to_original_grid(probs.cpu(), affine, original_affine, original_shape)
        if self.lcc:
            return largest_component_per_class(label, self.lcc)
        return label
