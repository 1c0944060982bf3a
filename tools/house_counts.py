"""Print issue 21's counts of the house: modules loose at the package root, functions declared to
return ``Any``, ``getattr``/``hasattr`` calls, and role names spelled outside the roles table.

Usage: ``python tools/house_counts.py [REPO] [-v]`` (``-v`` lists every place). It reads the
source as text and imports nothing.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROLE_WORDS = frozenset({"perceptual", "alignment", "stage1", "stage2", "masked", "global"})
ROLES_TABLE = "grefine_kit/parts/roles.py"
LITERALS = "role-name literals outside the roles table"


def _is_probe(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return False
    return node.func.id in ("getattr", "hasattr")


def count(root: Path) -> dict[str, list[str]]:
    """Every counted place by count name (``root modules``, ``-> Any``, ...)."""
    package = root / "grefine_kit"
    found: dict[str, list[str]] = {
        "root modules": sorted(p.name for p in package.glob("*.py") if p.name != "__init__.py"),
        "-> Any returns": [],
        "getattr/hasattr calls": [],
        LITERALS: [],
    }
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
                if ast.unparse(node.returns) in ("Any", "typing.Any"):
                    found["-> Any returns"].append(f"{rel}:{node.lineno} {node.name}")
            elif _is_probe(node):
                found["getattr/hasattr calls"].append(f"{rel}:{node.lineno} {ast.unparse(node)[:100]}")
            elif isinstance(node, ast.Constant) and node.value in ROLE_WORDS and rel != ROLES_TABLE:
                found[LITERALS].append(f"{rel}:{node.lineno} {node.value!r}")
    return found


def main(argv: list[str]) -> None:
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    found = count(Path(args[0]) if args else Path("."))
    for name, places in found.items():
        print(f"{name}: {len(places)}")
    if verbose:
        for name, places in found.items():
            print(f"\n## {name}")
            print("\n".join(places))


if __name__ == "__main__":
    main(sys.argv[1:])
