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

Names are a function of the item alone (its id and its image's file name), never of the order
of the items or of which other items a run has, so a rerun with other rows, or in another order,
never gives one item's name to another (:func:`output_stem`):

- a **plain** stem when the item's id is the image's own file name (a folder's top-level files,
  a manifest row without an id) and that name is short and printable: ``cat`` for ``cat.png``,
  the whole name for another image type (``cat.jpg`` -> ``cat.jpg.png``, so ``cat.png`` and
  ``cat.jpg`` in one folder keep apart);
- otherwise ``<stem>-<12 hex>``: the stem (shortened to :data:`MAX_STEM_BYTES` and with control
  characters and undecodable bytes replaced) plus 12 hex digits of the SHA-1 of the item id.
  Also when the plain stem would end in a reserved tag (``a.mask``: its refined image would
  otherwise be the mask of ``a.png``) or look like a hashed one.

Every output name then fits in a file name (255 bytes) with room for the temporary name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs

from grefine_kit.errors import UserError
from grefine_kit.runs.inputs import IMAGE_EXTENSIONS
from grefine_kit.runs.items import display_path, item_ids

__all__ = ["MAX_STEM_BYTES", "RESERVED_TAGS", "OutputNames", "output_stem", "output_stems"]

RESERVED_TAGS: Final = frozenset({"mask", "heatmap", "map", "report", "pq", "aq"})
MAX_STEM_BYTES: Final = 100
"""The longest stem part kept (UTF-8 bytes); a longer one is cut and gets the hash suffix."""
HASH_DIGITS: Final = 12
_HASHED: Final = re.compile(rf"-[0-9a-f]{{{HASH_DIGITS}}}$")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _shorten(text: str, limit: int = MAX_STEM_BYTES) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")  # cut on a character boundary


def _plain_ok(stem: str) -> bool:
    _, dot, tag = stem.rpartition(".")
    return not (
        (dot and tag.casefold() in RESERVED_TAGS)
        or _HASHED.search(stem)
        or len(stem.encode("utf-8")) > MAX_STEM_BYTES
        or _CONTROL.search(stem)
        or not stem
    )


def output_stem(item_id: str, image: str | Path) -> str:
    """The base name of one item's outputs: a function of ``item_id`` and the image's file
    name only (see the module docstring)."""
    path = Path(image)
    name = display_path(path.name)
    stem = display_path(path.stem)
    exact = stem == path.stem  # no undecodable bytes were escaped
    if exact and item_id == name:
        if path.suffix == ".png" and Path(stem).suffix.lower() not in IMAGE_EXTENSIONS and _plain_ok(stem):
            return stem
        if path.suffix != ".png" and path.suffix.lower() in IMAGE_EXTENSIONS and _plain_ok(name):
            return name
    base = _shorten(_CONTROL.sub("_", stem)) or "image"
    digest = hashlib.sha1(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_DIGITS]
    return f"{base}-{digest}"


def output_stems(paths: Sequence[Path], ids: Sequence[str] | None = None) -> list[str]:
    """:func:`output_stem` of each item (``ids`` default: :func:`~grefine_kit.runs.items.item_ids`
    of ``paths``). Two items whose names would differ only in case (``Cat.png`` and
    ``cat.png``: one file on a case-insensitive disk) are a UserError before any work."""
    ids = list(ids) if ids is not None else item_ids(list(paths))
    stems = [output_stem(i, p) for i, p in zip(ids, paths, strict=True)]
    seen: dict[str, str] = {}
    for item_id, stem in zip(ids, stems, strict=True):
        other = seen.setdefault(stem.casefold(), item_id)
        if other != item_id:
            raise UserError(
                f"items {other!r} and {item_id!r} would share the output name {stem!r} on a "
                "case-insensitive disk; rename one file, or give them ids in a --manifest"
            )
    return stems


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
