"""Dataset readers: one class per on-disk layout, named by ``reader._target_`` in ``configs/dataset/*.yaml``.

A reader turns a dataset config into labelled cases ``{"case": id, "image": path or [channel paths],
"label": path}``; :func:`ctbench.data.datasets.list_cases` builds the one the config names. A new layout
is a :class:`~ctbench.data.readers.base.CaseReader` subclass plus a YAML file naming it.
"""
