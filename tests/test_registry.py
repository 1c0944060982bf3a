from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grefine_kit import hookimpl
from grefine_kit.errors import UnknownPartError, UserError
from grefine_kit.parts.registry import KINDS, Registry, create_part, get_registry


def test_builtins_are_registered_lazily():
    registry = Registry.from_plugins(entry_points=False)
    assert {"pq-map", "aq-map", "clip-surgery"} <= set(registry.names("indicator"))
    assert {"spacy", "nltk", "stanza"} <= set(registry.names("parser"))
    assert {"inpaint", "img2img"} <= set(registry.names("stage"))
    entry = registry.get("indicator", "pq-map")
    assert entry.distribution == "grefine-kit"
    assert isinstance(entry.factory, str) and ":" in entry.factory  # not imported yet
    assert not registry.failures


def test_every_builtin_factory_resolves():
    registry = Registry.from_plugins(entry_points=False)
    for kind in KINDS:
        for name in registry.names(kind):
            assert registry.get(kind, name).load() is not None, (kind, name)


def test_unknown_name_suggests_close_match():
    registry = Registry.from_plugins(entry_points=False)
    with pytest.raises(UnknownPartError, match=r"did you mean 'pq-map'"):
        registry.get("indicator", "pq-mpa")
    with pytest.raises(UserError, match=r"did you mean 'indicator'"):
        registry.names("indicatr")


def test_unknown_option_is_a_user_error_with_suggestion(register_plugin):
    import attrs

    @attrs.define
    class Toy:
        threshold: float = 0.5
        needs_prompt = False

    class Plugin:
        @hookimpl
        def register_combiners(self, register):
            register("toy", Toy)

    register_plugin(Plugin(), name="toy-plugin")
    with pytest.raises(UserError, match=r"no option 'treshold' \(did you mean 'threshold'\?\)"):
        create_part("combiner", "toy", treshold=0.2)
    assert create_part("combiner", "toy", threshold=0.2).threshold == 0.2


def test_register_plugin_fixture_adds_and_restores(register_plugin):
    before = get_registry()

    class Plugin:
        @hookimpl
        def register_metrics(self, register):
            register("answer", "math:sqrt", summary="not really a metric")

    registry = register_plugin(Plugin(), name="p", distribution="my-dist")
    assert registry.get("metric", "answer").distribution == "my-dist"
    assert get_registry() is registry
    assert before is not registry


def test_failing_hook_only_loses_that_plugin(register_plugin):
    class Bad:
        @hookimpl
        def register_indicators(self, register):
            raise RuntimeError("boom")

    registry = register_plugin(Bad(), name="bad", distribution="bad-dist")
    assert "pq-map" in registry.names("indicator")
    assert any(f.distribution == "bad-dist" and "boom" in f.message for f in registry.failures)


def test_string_factory_must_name_module_and_attr(register_plugin):
    class Bad:
        @hookimpl
        def register_stages(self, register):
            register("x", "no_colon_here")

    registry = register_plugin(Bad(), name="bad")
    assert "x" not in registry.names("stage")
    assert any("module:attr" in f.message for f in registry.failures)


def test_installed_distribution_plugins(with_plugins):
    registry = get_registry()
    entry = registry.get("indicator", "brightness")
    assert entry.distribution == "grefine-example-plugin"
    assert "example-recipe" in registry.names("recipe")
    # the broken plugin is reported by name, the others still work
    broken = [f for f in registry.failures if f.distribution == "grefine-broken-plugin"]
    assert broken and "broken on purpose" in broken[0].message
    # a duplicate name is rejected, naming both distributions; its other parts still register
    dupes = [f for f in registry.failures if f.distribution == "grefine-dupe-plugin"]
    assert dupes and "grefine-kit" in dupes[0].message and "grefine-dupe-plugin" in dupes[0].message
    assert registry.get("indicator", "pq-map").distribution == "grefine-kit"
    assert "dupe-only" in registry.names("indicator")
    from grefine_kit.testing import check_part

    check_part("indicator", "brightness", gamma=2.0)


def test_env_switches(with_plugins, monkeypatch):
    from grefine_kit.parts.registry import reset_registry

    monkeypatch.setenv("GREFINE_DISABLE_PLUGINS", "grefine-broken-plugin,dupe")
    reset_registry()
    registry = get_registry()
    assert "brightness" in registry.names("indicator")
    assert not registry.failures
    monkeypatch.delenv("GREFINE_DISABLE_PLUGINS")
    monkeypatch.setenv("GREFINE_LOAD_PLUGINS", "")
    reset_registry()
    registry = get_registry()
    assert "brightness" not in registry.names("indicator")
    assert "pq-map" in registry.names("indicator")  # built-ins always load
    monkeypatch.setenv("GREFINE_LOAD_PLUGINS", "grefine-example-plugin")
    reset_registry()
    assert "brightness" in get_registry().names("indicator")
    # names compare as pip compares distribution names: case and -_. do not matter
    monkeypatch.setenv("GREFINE_LOAD_PLUGINS", "Grefine_Example.Plugin")
    reset_registry()
    assert "brightness" in get_registry().names("indicator")


def _grefine(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "grefine_kit.cli", *args], capture_output=True, text=True, env=env
    )


def test_cli_plugins_lists_installed_and_broken(plugin_site: Path):
    result = _grefine(["plugins"], {"PYTHONPATH": str(plugin_site)})
    assert result.returncode == 0, result.stderr
    assert "grefine-kit (grefine_kit.parts.builtins)" in result.stdout
    assert "grefine-example-plugin (example)" in result.stdout
    assert "indicator:brightness" in result.stdout
    assert "BROKEN grefine-broken-plugin (broken)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
