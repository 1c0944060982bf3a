"""Where the first-party plugins come from: the one install line every suggestion uses.

The first-party plugins (``grefine-ray``, ``grefine-paq2piq``, ``grefine-pyiqa``) live in the
``plugins/`` folder of the grefine_kit repository and are **not on PyPI**: ``pip install
grefine-ray`` finds nothing. Every message that suggests one (an unknown part name, ``--help``
texts, the local engine's ``--workers`` refusal) says how to install it from a checkout,
through :func:`install_hint`.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FIRST_PARTY", "install_hint", "plugin_fix", "plugin_for"]

REPOSITORY: Final = "the grefine_kit repository"

#: (kind, name or name prefix ending in ":") -> the first-party plugin that registers it
FIRST_PARTY: Final = {
    ("engine", "ray"): "grefine-ray",
    ("indicator", "paq2piq"): "grefine-paq2piq",
    ("recipe", "paq2piq-refine"): "grefine-paq2piq",
    ("metric", "pyiqa:"): "grefine-pyiqa",
}


def install_hint(distribution: str) -> str:
    """``pip install ./plugins/<distribution>`` with where to run it (it is not on PyPI)."""
    return f"pip install ./plugins/{distribution} (in a checkout of {REPOSITORY}; not on PyPI)"


def plugin_for(kind: str, name: str) -> str | None:
    """The first-party plugin that registers part ``name`` of ``kind`` (None: none does)."""
    for (k, key), dist in FIRST_PARTY.items():
        if k == kind and (name == key or (key.endswith(":") and name.startswith(key))):
            return dist
    return None


def plugin_fix(kind: str, name: str) -> str:
    """A ``"\\nfix: ..."`` line for an unknown part a first-party plugin provides, else ``""``."""
    dist = plugin_for(kind, name)
    if dist is None:
        return ""
    return f"\nfix: {kind} {name!r} comes from the {dist} plugin: {install_hint(dist)}"
