"""Post-processing of a predicted label map (``postprocess=lcc``), shared by validation, test and
``ctbench predict`` through :class:`~ctbench.engine.segmenter.Segmenter` and :mod:`ctbench.engine.predict`.
"""

from __future__ import annotations

import numpy as np


def largest_component_per_class(label: np.ndarray) -> np.ndarray:
    """Keep the largest connected component of every foreground class, in any number of dimensions.

    What MONAI's ``KeepLargestConnectedComponent(independent=True)`` computes (full connectivity: voxels that
    share a face, an edge or a corner are connected), written on ``scipy.ndimage.label`` because MONAI's CPU path
    needs scikit-image, which ctbench does not depend on. Ties keep the component found first.
    """
    from scipy import ndimage

    out = label.copy()
    structure = ndimage.generate_binary_structure(label.ndim, label.ndim)
    for cls in (int(c) for c in np.unique(label) if c > 0):
        components, count = ndimage.label(label == cls, structure=structure)
        if count > 1:
            sizes = np.bincount(components.ravel())[1:]
            out[(components > 0) & (components != int(np.argmax(sizes)) + 1)] = 0
    return out
