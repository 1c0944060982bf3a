"""`import grefine_kit`, `grefine --help` and `grefine list` must not import heavy libraries."""

from __future__ import annotations

from grefine_kit.testing.light import heavy_imports

STEPS = [
    ("import", "import grefine_kit"),
    ("help", "from grefine_kit.cli import main\nmain(['--help'])"),
    ("list", "from grefine_kit.cli import main\nmain(['list'])"),
]


def test_no_heavy_imports() -> None:
    # one fresh interpreter, the steps in order: each reports the heavy modules it added
    found, first = heavy_imports(STEPS)
    assert set(found) == {label for label, _ in STEPS}
    bad = {label: mods for label, mods in found.items() if mods}
    assert not bad, f"heavy modules imported: {bad} (first importers: {first})"
