"""The light-import conformance check catches a heavy import and names who made it."""

from __future__ import annotations

import pytest

from grefine_kit.testing import check_plugin_light
from grefine_kit.testing.light import heavy_imports


def test_a_light_module_passes() -> None:
    check_plugin_light("grefine_kit.parts.builtins")


def test_a_module_importing_torch_fails_naming_the_importer() -> None:
    expected = r"import grefine_kit.testing.tiny_clip imported torch \(first from "
    with pytest.raises(AssertionError, match=expected):
        check_plugin_light("grefine_kit.testing.tiny_clip")


def test_steps_report_what_each_newly_imported() -> None:
    found, first = heavy_imports([("a", "import json"), ("b", "import scipy"), ("c", "import scipy.ndimage")])
    assert found == {"a": [], "b": ["scipy"], "c": []}
    assert first["scipy"] == "__main__"  # the step itself
