"""The house has no loops: goz's imports, deferred ones included, only ever point down the layers.

Each module's imports are read from its source (every `import` and `from ... import`, at the top or
inside a function: a deferred import that climbs is still a loop, only hidden). A unit is a
top-level module or package of goz; its layer is below. A module may import from its own unit and
from units of lower layers; units of one layer must not form a loop; no two modules import each
other, directly or through others.
"""

from __future__ import annotations

import ast
from pathlib import Path

import checkout

# Bottom up. ARCHITECTURE.md draws the same table: keep the two together.
LAYERS = [
    {"goz", "errors", "names", "home", "lifeline", "device", "progress", "provenance", "figures", "clip_spec"},
    {"store", "catalog"},
    {"wordnet"},
    {"semantics"},
    {"splits"},
    {"models"},
    {"assets", "download", "extract"},
    {"bench"},
    {"synthetic", "demo"},
    {"commands", "cli", "__main__"},
]
LAYER_OF = {unit: number for number, units in enumerate(LAYERS) for unit in units}
PACKAGE = checkout.SRC / "goz"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(checkout.SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "goz"


def import_graph() -> dict[str, set[str]]:
    """module -> the goz modules it imports (a name imported from a package counts as the package,
    unless it is a submodule)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    targets.add(submodule if submodule in paths else source)
        graph[module] = {t for t in targets if t in paths and t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_is_read_and_every_unit_has_a_layer():
    graph = import_graph()
    assert len(graph) > 60 and sum(len(targets) for targets in graph.values()) > 150  # really read
    assert "goz.catalog" in graph["goz.splits.registry"]  # a known arrow is seen
    assert "goz.bench.run" in graph["goz.commands.bench"]  # a deferred one too
    units = {unit_of(module) for module in graph}
    assert units == set(LAYER_OF), f"units without a layer: {units - set(LAYER_OF)}; layers without a unit: " \
                                   f"{set(LAYER_OF) - units}"


def test_no_import_climbs_a_layer():
    climbing = sorted(f"{module} -> {target}" for module, targets in import_graph().items() for target in targets
                      if LAYER_OF[unit_of(target)] > LAYER_OF[unit_of(module)])
    assert not climbing, "imports that reach up a layer:\n" + "\n".join(climbing)


def test_no_loop_between_units_or_between_modules():
    graph = import_graph()
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        units.setdefault(unit_of(module), set()).update(unit_of(t) for t in targets if unit_of(t) != unit_of(module))
    assert find_cycle(units) is None, f"a loop between units: {' -> '.join(find_cycle(units))}"
    assert find_cycle(graph) is None, f"a loop between modules: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_a_loop_hidden_three_steps_away():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None
