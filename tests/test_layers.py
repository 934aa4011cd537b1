"""Imports point down the layers of ARCHITECTURE.md: a module may import its own layer
and the ones below, never one above."""

from __future__ import annotations

import ast
from pathlib import Path

LAYERS = [
    ("bzzz.errors", "bzzz.clock"),
    ("bzzz.domain",),
    ("bzzz.store",),
    ("bzzz.projections",),
    ("bzzz.home",),
    ("bzzz.mesh",),
    ("bzzz.runtime",),
    ("bzzz.audit", "bzzz.cli"),
]
ROOT = Path(__file__).resolve().parents[1]


def layer_of(module: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


def test_imports_point_down() -> None:
    upward = []
    for path in sorted((ROOT / "bzzz").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        own = layer_of(module)
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                target = layer_of(name)
                if target is not None and target > own:
                    upward.append(f"{module} imports {name}")
    assert not upward, upward
