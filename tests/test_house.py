"""The house's shape (issue 21): a small package root, no import loops between the package's
rooms, role names spelled only in the roles table.

Each check reads the source as text (ast), so it runs in milliseconds and imports nothing.
``python tools/house_counts.py . -v`` prints the same figures with every place listed.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "grefine_kit"
ROLE_WORDS = frozenset({"perceptual", "alignment", "stage1", "stage2", "masked", "global"})


def _room(module: str) -> str | None:
    """The top-level room (package or root module) of a ``grefine_kit.*`` module name."""
    parts = module.split(".")
    return parts[1] if parts[0] == "grefine_kit" and len(parts) > 1 else None


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return found


def test_the_package_root_holds_few_modules() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= 12, loose


def test_no_two_rooms_import_each_other() -> None:
    """Lazy imports inside functions count too: a loop between two rooms is a loop."""
    rooms = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        source = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for module, line in _imports(ast.parse(path.read_text("utf-8"))):
            target = _room(module)
            if target in rooms and target != source:
                edges[source, target].append(f"{path.relative_to(PACKAGE)}:{line}")
    loops = {
        f"{a} <-> {b}: {edges[a, b][0]} / {edges[b, a][0]}" for a, b in edges if a < b and (b, a) in edges
    }
    assert sorted(loops) == []


def test_role_names_are_spelled_only_in_the_roles_table() -> None:
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() == "parts/roles.py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ROLE_WORDS:
                spelled.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert spelled == []
