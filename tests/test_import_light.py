"""`import grefine_kit`, `grefine --help` and `grefine list` must not import heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "diffusers", "transformers", "open_clip", "spacy", "stanza")

PROBE = """
import sys
{code}
heavy = [m for m in {heavy!r} if m in sys.modules]
print("HEAVY:" + ",".join(heavy))
"""


@pytest.mark.parametrize(
    "code",
    [
        "import grefine_kit",
        "from grefine_kit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
        "from grefine_kit.cli import main\ntry:\n    main(['list'])\nexcept SystemExit:\n    pass",
    ],
    ids=["import", "help", "list"],
)
def test_no_heavy_imports(code):
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    marker = [line for line in result.stdout.splitlines() if line.startswith("HEAVY:")]
    assert marker, result.stdout + result.stderr
    assert marker[-1] == "HEAVY:", f"heavy modules imported: {marker[-1]}"
