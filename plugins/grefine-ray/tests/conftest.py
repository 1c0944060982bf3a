"""Make ``grefine_ray`` importable when the plugin is not installed (a checkout), for this
process, its subprocesses and the Ray workers they start (through ``PYTHONPATH``).

CI installs the plugin (``pip install ./plugins/grefine-ray``) and then this does nothing.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import tomllib
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[1]

if importlib.util.find_spec("grefine_ray") is None:
    sys.path.insert(0, str(PLUGIN_DIR))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")) if p
    )


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """The environment for a subprocess that sees grefine-ray's entry point: as installed,
    or (in a checkout) through a minimal ``.dist-info`` built from the pyproject."""
    env = dict(os.environ)
    try:
        importlib.metadata.distribution("grefine-ray")
        return env
    except importlib.metadata.PackageNotFoundError:
        pass
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    info = tmp_path / "site" / "grefine_ray-0.1.0.dist-info"
    info.mkdir(parents=True)
    meta = f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    (info / "METADATA").write_text(meta)
    lines = ["[grefine_kit]", *(f"{k} = {v}" for k, v in project["entry-points"]["grefine_kit"].items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(PLUGIN_DIR), env.get("PYTHONPATH", "")])
    return env
