"""Make ``grefine_ray`` importable when the plugin is not installed (a checkout), for this
process, its subprocesses and the Ray workers they start (through ``PYTHONPATH``).

CI installs the plugin (``pip install ./plugins/grefine-ray``) and then this does nothing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1]

if importlib.util.find_spec("grefine_ray") is None:
    sys.path.insert(0, str(PLUGIN_DIR))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
