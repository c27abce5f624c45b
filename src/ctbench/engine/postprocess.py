"""Post-processing of a predicted label map (``postprocess=lcc``), shared by validation, test and
``ctbench predict`` through :class:`~ctbench.engine.segmenter.Segmenter` and :mod:`ctbench.engine.predict`.
"""

from __future__ import annotations

import numpy as np
import torch


def largest_component_per_class(label: np.ndarray) -> np.ndarray:
    """Keep the largest connected component of every foreground class (MONAI's transform)."""
    from monai.transforms import KeepLargestConnectedComponent

    classes = [int(c) for c in np.unique(label) if c > 0]
    if not classes:
        return label
    kept = KeepLargestConnectedComponent(applied_labels=classes, independent=True)(torch.as_tensor(label)[None])
    return np.asarray(kept[0]).astype(label.dtype)
