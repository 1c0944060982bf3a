"""Output names in a run folder: one scheme for ``score``, ``refine`` and ``evaluate``.

Per item with output stem ``S`` (:func:`output_stems`):

=====================  ================================================================
``S.png``              the refined image (refine)
``S.report.json``      the per-item report (refine)
``S.mask.png``         the repaint mask, white = repainted (refine, with maps)
``S.heatmap.png``      the quality map over the image (score, evaluate: one indicator)
``S.map.npy``          the raw map, float32 (H, W), 1 = good (score, evaluate)
``S.<role>.heatmap.png`` / ``S.<role>.map.npy``   the same per indicator role, ``pq`` or
                       ``aq``, when a run has two maps (refine)
=====================  ================================================================

Names cannot clash within a run: a stem shared by several inputs gets a hash suffix, and so
does a stem ending in a reserved tag (``a.mask`` from ``a.mask.png``: its refined image would
otherwise be the mask of ``a.png``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs

__all__ = ["RESERVED_TAGS", "OutputNames", "output_stems"]

RESERVED_TAGS: Final = frozenset({"mask", "heatmap", "map", "report", "pq", "aq"})


def _needs_suffix(stem: str) -> bool:
    _, dot, tag = stem.rpartition(".")
    return bool(dot) and tag.casefold() in RESERVED_TAGS


def _digest(p: Path) -> str:
    return hashlib.sha1(os.fsencode(p.as_posix())).hexdigest()


def output_stems(paths: Sequence[Path]) -> list[str]:
    """Base names for each file's outputs.

    A stem shared (case-insensitively) by several inputs, e.g. ``a/cat.png`` and
    ``b/cat.jpg``, or ending in a reserved tag (``.mask``, ``.heatmap``...) gets
    ``-<8 hex of sha1(path as given)>`` appended, so names depend only on the paths, never on
    their order, and no output of one item can be the name of another item's output.
    """
    stems = [os.fsencode(p.stem).decode("utf-8", "backslashreplace") for p in paths]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.casefold()] = counts.get(s.casefold(), 0) + 1
    plain = {s.casefold() for s in stems if counts[s.casefold()] == 1 and not _needs_suffix(s)}
    taken = set(plain)
    out: list[str] = []
    for p, s in zip(paths, stems, strict=True):
        if s.casefold() in plain:
            out.append(s)
            continue
        digest = _digest(p)
        n = 8
        while f"{s}-{digest[:n]}".casefold() in taken and n < len(digest):
            n += 4  # a real stem that looks like our suffix: lengthen until unique
        name = f"{s}-{digest[:n]}"
        taken.add(name.casefold())
        out.append(name)
    return out


@attrs.frozen
class OutputNames:
    """The file names (inside the run folder) of one item's outputs."""

    stem: str

    @property
    def image(self) -> str:
        return f"{self.stem}.png"

    @property
    def report(self) -> str:
        return f"{self.stem}.report.json"

    @property
    def mask(self) -> str:
        return f"{self.stem}.mask.png"

    def heatmap(self, role: str | None = None) -> str:
        return f"{self.stem}.{role}.heatmap.png" if role else f"{self.stem}.heatmap.png"

    def preview(self, role: str, step: int) -> str:
        """An intermediate image of stage ``role`` after denoising step ``step``."""
        return f"{self.stem}.{role}.step{step:03d}.png"

    def raw_map(self, role: str | None = None) -> str:
        return f"{self.stem}.{role}.map.npy" if role else f"{self.stem}.map.npy"
