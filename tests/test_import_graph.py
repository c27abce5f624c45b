"""The package's import graph has no cycle, and no layer imports a layer above it (docs/architecture.md).

The graph is read from the source with :mod:`ast`: an edge ``a -> b`` for every ``import``/``from ... import``
of a ``ctbench`` module anywhere in ``a``: at module level, inside functions and under ``TYPE_CHECKING``
alike. A function-level import that keeps ``ctbench --help`` or ``ctbench predict`` from loading torch or
Lightning is still a dependency, and a cycle hidden in a function is still a cycle, so none is excluded.
Hand-written because the check is a few dozen lines (Tarjan's strongly connected components);
``import-linter`` would add a dependency and a second place for the layer table.

Importing every module costs ~25 s cold (torch, Lightning, MONAI), ~1 s in the fast tier, whose earlier
tests have loaded those libraries already; the graph checks read source only (~1 s).
"""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
from pathlib import Path

import ctbench

PACKAGE = "ctbench"
SRC = Path(ctbench.__file__).parent

#: Layers from the bottom up (docs/architecture.md, "Layers"): a module may import its own layer and those
#: below it, never one above. A module's layer is that of the longest prefix naming it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("shared", ("ctbench", "ctbench.errors", "ctbench.atomic", "ctbench.folder_lock", "ctbench.safe_yaml", "ctbench.provenance",
                "ctbench.config", "ctbench.commands")),
    ("files", ("ctbench.data.readers", "ctbench.data.dicom", "ctbench.data.voxel_budget",
               "ctbench.data.phantom", "ctbench.data.phantom_anatomy", "ctbench.data.phantom_files", "ctbench.data.synthetic",
               "ctbench.data.synth")),
    ("data", ("ctbench.data",)),
    ("models, losses, metrics", ("ctbench.models", "ctbench.losses", "ctbench.metrics",
                                 "ctbench.lesion_metrics", "ctbench.surface_distance", "ctbench.run_folder")),
    ("engine", ("ctbench.engine",)),
    ("reports", ("ctbench.reports",)),
    ("tasks", ("ctbench.engine.run", "ctbench.engine.throughput")),
    ("entry", ("ctbench.cli", "ctbench.completion", "ctbench.hydra_app", "ctbench.hydra_entry", "ctbench.api",
               "ctbench.study", "ctbench.catalog", "ctbench.sweep_status")),
]

#: Orders inside a package (docs/architecture.md): each module imports only those before it in its list.
ORDERS: dict[str, list[str]] = {
    "ctbench.data.dicom": ["headers", "deid", "types", "geometry", "decode", "outputs", "series", "volume",
                           "convert", "seg"],
    "ctbench.engine": ["components", "checkpoint", "inference", "postprocess", "segmenter", "module",
                       "build"],
}


def module_names(root: Path = SRC) -> dict[str, Path]:
    """Every module of the package found under ``root``: dotted name -> file."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(name: str, source: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package modules that ``source`` (module ``name``) imports, relative imports resolved.

    ``from X import y`` counts as an edge to ``X.y`` when that is a module, else to ``X``.
    """
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = ".".join(filter(None, [base if node.level else "", node.module or ""]))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # a dotted name -> the longest module it starts with
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """``{module: (source, is_package)}`` -> ``{module: modules it imports}``."""
    modules = set(sources)
    return {name: imports_of(name, src, pkg, modules) for name, (src, pkg) in sources.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or ``None`` (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def all_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (each holds at least one cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def connect(node: str) -> None:  # Tarjan (1972)
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def layer_of(module: str) -> int:
    """The rank in :data:`LAYERS` of the longest prefix naming ``module``."""
    matches = [(len(p), rank) for rank, (_, prefixes) in enumerate(LAYERS) for p in prefixes
               if module == p or module.startswith(p + ".")]
    assert matches, f"{module} is in no layer of LAYERS (add it there and to docs/architecture.md)"
    return max(matches)[1]


@functools.cache
def package_graph() -> dict[str, set[str]]:
    """The import graph of the installed package's source."""
    files = module_names()
    return import_graph({name: (path.read_text(), path.name == "__init__.py")
                         for name, path in files.items()})


def test_every_module_imports():
    names = {m.name for m in pkgutil.walk_packages(ctbench.__path__, prefix=f"{PACKAGE}.")}
    for name in sorted(names):
        importlib.import_module(name)
    assert names | {PACKAGE} == set(module_names())


def test_import_graph_has_no_cycle():
    graph = package_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle) + f"\nall: {all_cycles(graph)}"


def test_no_layer_imports_a_layer_above():
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
              for a, targets in package_graph().items() for b in sorted(targets) if layer_of(b) > layer_of(a)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_package_orders_hold():
    graph = package_graph()
    later = [f"{package}.{a} -> {package}.{b}" for package, order in ORDERS.items()
             for i, a in enumerate(order) for b in order[i + 1:]
             if f"{package}.{b}" in graph[f"{package}.{a}"]]
    assert not later, "imports of a module later in ORDERS:\n" + "\n".join(later)
    assert all(f"{package}.{name}" in graph for package, order in ORDERS.items() for name in order)


def test_the_check_finds_a_cycle():
    """The checker itself: a relative-import cycle through a package ``__init__`` is found."""
    graph = import_graph({
        "ctbench.a": ("from ctbench.a import b\n", True),
        "ctbench.a.b": ("def f():\n    from ..c import g\n", False),
        "ctbench.c": ("import ctbench.a.b as b\n", False),
        "ctbench.d": ("from . import c\n", False),
    })
    assert graph["ctbench.a.b"] == {"ctbench.c"} and graph["ctbench.d"] == {"ctbench.c"}
    assert find_cycle(graph) == ["ctbench.a.b", "ctbench.c", "ctbench.a.b"]
    assert all_cycles(graph) == [["ctbench.a.b", "ctbench.c"]]
