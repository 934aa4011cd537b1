"""The layers of ARCHITECTURE.md hold: imports point down (a module may import its own
layer and the ones below, never one above), adapters do not import each other, services
never import an adapter, and no package has an import cycle inside it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

LAYERS = [
    ("bzzz.errors", "bzzz.clock"),
    ("bzzz.domain",),
    ("bzzz.store",),
    ("bzzz.projections",),
    ("bzzz.home",),
    # adapters, one package each: see ADAPTERS
    (
        "bzzz.mesh",
        "bzzz.tasks",
        "bzzz.notify",
        "bzzz.execution",
        "bzzz.http",
        "bzzz.ops",
        "bzzz.deploy",
    ),
    ("bzzz.services",),
    ("bzzz.runtime",),
    ("bzzz.agent", "bzzz.audit", "bzzz.cli", "bzzz.hap", "bzzz.client"),  # front ends
]
# Each adapter is one outside world behind a seam; the runtime is what puts them together.
ADAPTERS = (
    "bzzz.mesh",
    "bzzz.tasks",
    "bzzz.notify",
    "bzzz.execution",
    "bzzz.http",
    "bzzz.ops",
    "bzzz.deploy",
)
ROOT = Path(__file__).resolve().parents[1]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(_within(module, p) for p in prefixes):
            return level
    return None


def package_of(module: str) -> str:
    """`bzzz.mesh` for `bzzz.mesh.session`; a top-level module is its own package."""
    parts = module.split(".")
    return ".".join(parts[:2])


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / "bzzz").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        yield name, path


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every bzzz module `path` imports, anywhere in it (lazy imports included):
    `from bzzz.store import tables` imports the module `bzzz.store.tables`, and
    `from bzzz.store import EventStore` the package `bzzz.store`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    known = {name for name, _ in modules()}
    return {name: imports_of(path, known) for name, path in modules()}


def test_imports_point_down() -> None:
    upward = []
    for module, targets in graph().items():
        own = layer_of(module)
        for target in targets:
            level = layer_of(target)
            if own is not None and level is not None and level > own:
                upward.append(f"{module} imports {target}")
    assert not upward, upward


def test_adapters_do_not_import_each_other_and_services_import_none() -> None:
    wrong = []
    for module, targets in graph().items():
        mine = next((a for a in ADAPTERS if _within(module, a)), None)
        for target in targets:
            theirs = next((a for a in ADAPTERS if _within(target, a)), None)
            if theirs is None:
                continue
            if mine is not None and theirs != mine:
                wrong.append(f"adapter {module} imports adapter {target}")
            if _within(module, "bzzz.services"):
                wrong.append(f"service {module} imports adapter {target}")
    assert not wrong, wrong


def test_no_import_cycle_inside_a_package() -> None:
    edges = graph()
    cycles = []
    for start in edges:
        package = package_of(start)
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for target in edges.get(node, ()):
                if package_of(target) != package:
                    continue
                if target == start:
                    cycles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert not cycles, sorted(set(cycles))[:5]


def test_the_checks_see_real_imports() -> None:
    """Guards the guard: the graph finds the imports it is meant to judge."""
    edges = graph()
    assert "bzzz.services.ports" in edges["bzzz.services.election"]
    assert "bzzz.mesh.session" in edges["bzzz.mesh.mesh"]
    assert layer_of("bzzz.services.claims") == 6 and layer_of("bzzz.mesh.mesh") == 5
