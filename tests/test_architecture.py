"""The package's import graph, read from the source (``ast``, nothing imported): no cycles,
every import points down the declared floors, and the ideas that once had several homes
have one.

Function-local imports count like module-level ones (the graph is the real one). A new
module must be given a floor in ``FLOORS``: a module may import only from lower floors.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scarlet_jax"

#: Floors, bottom up. A module imports only modules on lower floors.
FLOORS = [
    # 0: types, pure operators and leaf utilities
    {"_version", "errors", "boxes", "buckets", "cache", "components", "fft", "render", "prox",
     "optim", "stopping", "starlet", "measure", "spectra"},
    # 1: built on one of those
    {"psf", "centers", "memory", "monotonicity", "likelihood", "step_sizes"},
    # 2: the observation, the constraint chain, the bucket planner
    {"observation", "constraints", "plan"},
    # 3: per-blend host steps, box growth, the result
    {"detect", "inputs", "packing", "result", "growth", "datasets.synthetic"},
    # 4: the fit, initialisation, files, tables
    {"fit", "io", "tables", "datasets"},
    # 5: lanes, the option table and its typed groups, pictures
    {"scheduler", "options", "display"},
    # 6: initialisation (takes the typed init options)
    {"initialization"},
    # 6b: post-fit re-attribution (reads the bump tests of initialisation)
    {"reattribute"},
    # 7: the host pipeline
    {"pipeline"},
    # 8: the entry points
    {"batch", "deblend"},
    # 9: scale-out
    {"distributed"},
    # 10: the command line
    {"cli"},
    # 11: the package's public face
    {""},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """The package modules ``path`` imports (relative or absolute, anywhere in the file)."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if name else []
    if not is_package:
        here = here[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
            elif node.module and node.module.split(".")[0] == "scarlet_jax":
                base = []
            else:
                continue
            module = node.module or ""
            if not node.level:
                module = module.removeprefix("scarlet_jax").lstrip(".")
            target = ".".join(base + ([module] if module else []))
            if node.module:
                out.add(target)
            else:  # ``from . import a, b``: each name is a module
                out.update(".".join(filter(None, [target, a.name])) for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "scarlet_jax" or alias.name.startswith("scarlet_jax."):
                    out.add(alias.name.removeprefix("scarlet_jax").lstrip("."))
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        # ``from .x import y`` where y is a name, not a module: keep the module x
        graph[name] = {t if t in files else t.rsplit(".", 1)[0] for t in _imports(path, name)}
        graph[name] = {t for t in graph[name] if t in files and t != name}
    return graph


def test_every_module_has_a_floor():
    floors = [m for floor in FLOORS for m in floor]
    assert len(floors) == len(set(floors)), "a module is on two floors"
    missing = sorted(set(_graph()) - set(floors))
    assert not missing, f"give these modules a floor in FLOORS: {missing}"


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                pytest.fail(f"import cycle: {' -> '.join(m or 'scarlet_jax' for m in cycle)}")
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_imports_only_point_down():
    floor_of = {m: i for i, floor in enumerate(FLOORS) for m in floor}
    upward = [
        f"{m or 'scarlet_jax'} (floor {floor_of[m]}) imports {d or 'scarlet_jax'} "
        f"(floor {floor_of[d]})"
        for m, deps in sorted(_graph().items()) if m in floor_of
        for d in sorted(deps) if d in floor_of and floor_of[d] >= floor_of[m]
    ]
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


def test_the_graph_is_read_right():
    """The reader sees relative, function-local and ``from . import`` imports."""
    graph = _graph()
    assert "fft" in graph["result"]
    assert "prox" in graph["monotonicity"]
    assert {"io", "measure", "prox"} <= graph[""]
    assert "distributed" in graph["cli"]  # a function-local import


@pytest.mark.parametrize("name", ["detection_image", "render", "residual", "next_fast_len",
                                  "validate_centers", "round_centers", "make_optimizer"])
def test_one_home(name):
    """Defined once in the package (a private ``_name`` counts as another home)."""
    homes = Counter()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                    and node.name in (name, f"_{name}")):
                homes[_module_name(path)] += 1
    assert sum(homes.values()) == 1, f"{name} is defined in {dict(homes) or 'no module'}"


@pytest.mark.parametrize("name", ["FitData", "InitComponent", "PackedBlend", "BucketKey",
                                  "Components", "Placement"])
def test_shared_types_live_in_components(name):
    homes = [
        _module_name(path)
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name == name
    ]
    assert homes == ["components"]
