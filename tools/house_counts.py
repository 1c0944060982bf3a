"""Counts for issue 21: root modules, -> Any returns, getattr/hasattr calls, role-name literals."""
from __future__ import annotations
import ast, sys, pathlib, collections

ROLE_WORDS = {"perceptual", "alignment", "stage1", "stage2", "masked", "global"}

def main(root: str, verbose: bool = False) -> None:
    pkg = pathlib.Path(root) / "grefine_kit"
    rootmods = sorted(p.name for p in pkg.glob("*.py") if p.name != "__init__.py")
    anys, probes, roles = [], [], []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(root)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
                r = ast.unparse(node.returns)
                if r in ("Any", "typing.Any"):
                    anys.append(f"{rel}:{node.lineno} {node.name}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
                probes.append(f"{rel}:{node.lineno} {ast.unparse(node)[:110]}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ROLE_WORDS:
                if path.name != "roles.py":
                    roles.append(f"{rel}:{node.lineno} {node.value!r}")
    print(f"root modules (without __init__): {len(rootmods)}  {' '.join(rootmods)}")
    print(f"-> Any returns: {len(anys)}")
    print(f"getattr/hasattr calls: {len(probes)}")
    print(f"role-name literals outside roles.py: {len(roles)}")
    if verbose:
        for title, rows in (("-> Any", anys), ("getattr/hasattr", probes), ("role literals", roles)):
            print(f"\n## {title}")
            print("\n".join(rows))

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".", "-v" in sys.argv)
