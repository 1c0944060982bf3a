"""pytest fixtures for grefine_kit and its plugin authors (loaded via the ``pytest11`` entry point).

``register_plugin(obj, name=..., distribution=...)`` registers a plugin object (a module or any
object with ``@hookimpl`` functions) for one test; the process-wide registry is restored after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from grefine_kit.parts import registry as registry_module


@pytest.fixture
def grefine_registry() -> Iterator[registry_module.Registry]:
    """A freshly built registry (built-ins + installed plugins), process-wide for this test."""
    previous = registry_module._registry
    fresh = registry_module.Registry.from_plugins()
    registry_module.reset_registry(fresh)
    try:
        yield fresh
    finally:
        registry_module.reset_registry(previous)


@pytest.fixture
def register_plugin() -> Iterator[Callable[..., registry_module.Registry]]:
    """Register plugin objects for one test: ``register_plugin(my_module)`` -> the new registry."""
    previous = registry_module._registry
    extra: list[tuple[Any, str, str]] = []

    def register(
        plugin: Any, name: str | None = None, distribution: str = "test-plugin"
    ) -> registry_module.Registry:
        named = isinstance(plugin, (ModuleType, type))  # a plugin module or class; else its repr
        plugin_name = name or (plugin.__name__ if named else repr(plugin))
        extra.append((plugin, plugin_name, distribution))
        fresh = registry_module.Registry.from_plugins(extra)
        registry_module.reset_registry(fresh)
        return fresh

    try:
        yield register
    finally:
        registry_module.reset_registry(previous)


@pytest.fixture
def tiny_backbone() -> dict[str, str]:
    """Options selecting the tiny random-weight CLIP backbone (offline)."""
    from grefine_kit.testing import TINY_BACKBONE

    return dict(TINY_BACKBONE)
