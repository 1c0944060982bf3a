"""Sharding: ``--shard I/N`` takes the items whose id hashes to ``I`` modulo ``N``.

The hash is SHA-256 of the id's UTF-8 bytes, so the partition depends only on the ids: never
on the order of the inputs, the machine, the Python version or ``PYTHONHASHSEED``. Every item
lands in exactly one of the ``N`` shards, and an item's outputs do not depend on which other
items share its shard (seeds derive from the id, output names are fixed before sharding), so
the union of the ``N`` shards' outputs is the unsharded run's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TypeVar

import attrs

from grefine_kit.errors import UserError

__all__ = ["Shard", "parse_shard", "shard_index"]

T = TypeVar("T")

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def shard_index(item_id: str, count: int) -> int:
    """Which of ``count`` shards ``item_id`` belongs to (``0 <= index < count``)."""
    digest = hashlib.sha256(item_id.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count


@attrs.frozen
class Shard:
    """Shard ``index`` of ``count`` (0-based: ``0/2`` and ``1/2`` make the whole)."""

    index: int
    count: int

    def __attrs_post_init__(self) -> None:
        if self.count < 1:
            raise UserError(f"--shard {self}: the shard count must be at least 1")
        if not 0 <= self.index < self.count:
            raise UserError(
                f"--shard {self}: the index must be 0 to {self.count - 1} (shards are numbered from 0)"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, item_id: str) -> bool:
        return self.count == 1 or shard_index(item_id, self.count) == self.index

    def select(self, values: Sequence[T], ids: Sequence[str]) -> list[T]:
        """The ``values`` whose id (same position in ``ids``) is in this shard, in order."""
        return [v for v, i in zip(values, ids, strict=True) if self.holds(i)]


def parse_shard(text: str | None) -> Shard | None:
    """``"I/N"`` -> :class:`Shard`; None -> None. Raises UserError for anything else."""
    if text is None:
        return None
    match = _SPEC.fullmatch(text)
    if match is None:
        raise UserError(f"--shard {text!r}: expected I/N, e.g. 0/4 (shard 0 of 4)")
    return Shard(int(match[1]), int(match[2]))
