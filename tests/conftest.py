"""Shared test fixtures. Fixtures for plugin authors live in grefine_kit.testing.pytest_plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
PLUGIN_PACKAGES = ("grefine-example-plugin", "grefine-broken-plugin", "grefine-dupe-plugin")

# Tests never touch a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> Iterator[None]:
    """The tests run tiny models: one torch thread avoids oversubscribing 2-core machines (several
    times faster for tiny diffusers pipelines than torch's default thread count)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where the test plugin distributions are really installed (pip, dist-info, entry points)."""
    target = tmp_path_factory.mktemp("plugin-site")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--target",
        str(target),
    ]
    cmd += [str(TESTS / "plugins" / name) for name in PLUGIN_PACKAGES]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return target


@pytest.fixture
def with_plugins(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the installed test plugins visible to importlib.metadata in this process."""
    monkeypatch.syspath_prepend(str(plugin_site))
    from grefine_kit.parts import registry

    previous = registry._registry
    registry.reset_registry(None)
    try:
        yield plugin_site
    finally:
        for name in ("grefine_example_plugin", "grefine_broken_plugin", "grefine_dupe_plugin"):
            sys.modules.pop(name, None)
        registry.reset_registry(previous)
