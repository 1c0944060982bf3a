"""``check_files_whole``: every file a run left in its folder is complete (for kill tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["check_files_whole"]


def check_files_whole(out: Path) -> None:
    """Assert that ``out`` holds no temp files and that every PNG decodes, every NPY is finite,
    every JSON parses, every JSON Lines file ends with a newline and parses line by line, and
    every CSV ends with a newline."""
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")], "temp files left"
    for p in out.iterdir():
        if p.suffix == ".png":
            with Image.open(p) as im:
                im.load()
        elif p.suffix == ".npy":
            assert np.isfinite(np.load(p, allow_pickle=False)).all(), p.name
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".jsonl":
            assert p.read_bytes().endswith(b"\n"), p.name
            for line in p.read_text().splitlines():
                json.loads(line)
        elif p.suffix == ".csv":
            assert p.read_text().endswith("\n"), p.name
