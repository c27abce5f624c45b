"""Post-processing of a predicted label map (``postprocess=lcc``), shared by validation, test and
``ctbench predict`` through :class:`~ctbench.engine.segmenter.Segmenter` and :mod:`ctbench.engine.predict`.

Only the classes the dataset declares one connected structure (``dataset.single_component_classes``) are
reduced to their largest component, as nnU-Net keeps the largest component only of the classes where that helps on
its validation cases: a class that holds several structures (both kidneys under one label, liver lesions) would
keep one of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ctbench.errors import CTBenchError, printable


def largest_component_per_class(label: np.ndarray, classes: Iterable[int]) -> np.ndarray:
    """Keep the largest connected component of each of ``classes`` (label values), in any number of dimensions;
    other classes are left as they are.

    What MONAI's ``KeepLargestConnectedComponent(applied_labels=classes, independent=True)`` computes (full
    connectivity: voxels that share a face, an edge or a corner are connected), written on ``scipy.ndimage.label``
    because MONAI's CPU path needs scikit-image, which ctbench does not depend on. Ties keep the component found
    first.
    """
    from scipy import ndimage

    out = label.copy()
    structure = ndimage.generate_binary_structure(label.ndim, label.ndim)
    for cls in (int(c) for c in classes):
        components, count = ndimage.label(label == cls, structure=structure)
        if count > 1:
            sizes = np.bincount(components.ravel())[1:]
            out[(components > 0) & (components != int(np.argmax(sizes)) + 1)] = 0
    return out


def single_component_classes(dataset: Mapping[str, Any]) -> list[int]:
    """The label values of ``dataset.single_component_classes``, the classes ``postprocess=lcc`` reduces to their
    largest component; one line naming the fix when the dataset does not declare them or names a class it lacks."""
    names = list(dataset.get("class_names") or [])
    chosen = dataset.get("single_component_classes")
    if chosen is None:
        raise CTBenchError(
            f"postprocess=lcc: dataset '{printable(str(dataset.get('name')))}' does not say which classes are one "
            "connected structure: set dataset.single_component_classes=[...] (e.g. [liver,spleen]); a class that "
            "holds several (both kidneys under one label, lesions) would keep only its largest", exit_code=2)
    unknown = [str(c) for c in chosen if c not in names[1:]]
    if unknown:
        raise CTBenchError(f"dataset.single_component_classes names {', '.join(map(printable, unknown))}, not a "
                           f"foreground class of {names[1:]}: name classes of dataset.class_names", exit_code=2)
    return [names.index(c) for c in chosen]
