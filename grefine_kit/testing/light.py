"""The light-import check: a plugin must not make ``grefine list`` / ``grefine doctor`` slow.

The registry imports every plugin's entry module at start-up, and ``grefine doctor`` and the
preflight checks *build* parts (construction must load nothing). A plugin whose entry module,
part factory module or part constructor imports torch (2-8 s on a 2-core machine) makes every
command that slow. :func:`check_plugin_light` runs, in a fresh interpreter, an import of the
entry module, then ``grefine list`` and ``grefine doctor`` with only that plugin loaded
(``GREFINE_LOAD_PLUGINS``; offline, so doctor probes no network), and fails naming the heavy
modules that each step imported and the first importer of each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Final

__all__ = ["HEAVY_MODULES", "check_plugin_light", "heavy_imports"]

#: libraries that take seconds to import; numpy and Pillow are cheap and already core imports
HEAVY_MODULES: Final = (
    "torch",
    "torchvision",
    "diffusers",
    "transformers",
    "open_clip",
    "timm",
    "spacy",
    "stanza",
    "nltk",
    "scipy",
    "skimage",
    "cv2",
    "ray",
    "pyiqa",
    "tensorflow",
    "jax",
)

_PROBE = r"""
import builtins, json, sys
heavy = set(json.loads(sys.argv[1]))
steps = json.loads(sys.argv[2])
first = {}
real_import = builtins.__import__

def spy(name, globals=None, locals=None, fromlist=(), level=0):
    top = name.partition(".")[0]
    if level == 0 and top in heavy and top not in sys.modules and top not in first:
        who = (globals or {}).get("__name__", "?")
        first[top] = who
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = spy
found = {}
for label, code in steps:
    before = {m for m in heavy if m in sys.modules}
    try:
        exec(code, {"__name__": "__main__"})
    except SystemExit:
        pass
    found[label] = sorted(m for m in heavy if m in sys.modules and m not in before)
print("LIGHT-CHECK:" + json.dumps({"found": found, "first": first}))
"""

_CLI = "from grefine_kit.cli import main\nmain([{args}])"


def heavy_imports(
    steps: Sequence[tuple[str, str]],
    *,
    env: dict[str, str] | None = None,
    heavy: Sequence[str] = HEAVY_MODULES,
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Run ``(label, python code)`` steps in order in one fresh interpreter; returns (heavy
    modules each step newly imported, the module that first imported each heavy one)."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(heavy)), json.dumps([list(s) for s in steps])],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    marker = [line for line in result.stdout.splitlines() if line.startswith("LIGHT-CHECK:")]
    assert marker, f"the import probe failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    data = json.loads(marker[-1].removeprefix("LIGHT-CHECK:"))
    return data["found"], data["first"]


def check_plugin_light(
    module: str, *, distribution: str | None = None, heavy: Sequence[str] = HEAVY_MODULES
) -> None:
    """Fail when importing plugin entry module ``module`` or, with ``distribution`` (the
    installed plugin's name, e.g. ``"grefine-paq2piq"``), running ``grefine list`` and
    ``grefine doctor`` with only that plugin loaded imports a library in ``heavy``.

    Fix a failure by importing the heavy library inside the functions that need it, and
    giving parts string factories (``"package.module:Class"``) whose modules are light too.
    """
    steps = [(f"import {module}", f"import {module}")]
    env = {"HF_HUB_OFFLINE": "1"}
    if distribution is not None:
        env["GREFINE_LOAD_PLUGINS"] = distribution
        steps += [(f"grefine {verb}", _CLI.format(args=repr(verb))) for verb in ("list", "doctor")]
    found, first = heavy_imports(steps, env=env, heavy=heavy)
    bad = {label: mods for label, mods in found.items() if mods}
    if bad:
        detail = "; ".join(
            f"{label} imported " + ", ".join(f"{m} (first from {first.get(m, '?')})" for m in mods)
            for label, mods in bad.items()
        )
        raise AssertionError(f"plugin {distribution or module} is not light: {detail}")
