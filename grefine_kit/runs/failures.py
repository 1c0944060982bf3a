"""The closing summary of a run: per-item failures grouped by reason, most frequent first."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = ["FailureSummary", "failure_reason"]

# numbers, quoted names and paths vary per item; the reason is what is left
_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|\S*[/\\]\S*|\b\d+(?:\.\d+)?\b")


def failure_reason(error: str, file: str | None = None) -> str:
    """The error of one item with the parts that vary per item (its file name, numbers,
    quoted names) blanked, so the same failure on different files groups together."""
    text = error
    if file:
        text = text.replace(file, "FILE")
        name = file.replace("\\", "/").rsplit("/", 1)[-1]
        if name:
            text = text.replace(name, "FILE")
    return _VARYING.sub("…", text).strip()


@attrs.define
class FailureSummary:
    """Collects failed records (``status != "ok"``) and renders the grouped summary."""

    groups: dict[str, tuple[int, str, str]] = attrs.field(factory=dict)

    def add(self, record: Mapping[str, Any]) -> None:
        if record.get("status") == "ok":
            return
        file = str(record.get("file") or record.get("id") or "?")
        error = str(record.get("error") or "unknown error")
        key = failure_reason(error, file)
        count, example, message = self.groups.get(key, (0, file, error))
        self.groups[key] = (count + 1, example, message)

    def extend(self, records: Iterable[Mapping[str, Any]]) -> None:
        for r in records:
            self.add(r)

    @property
    def n_failed(self) -> int:
        return sum(c for c, _, _ in self.groups.values())

    def lines(self, limit: int = 10) -> list[str]:
        """``failed: N x REASON (e.g. FILE: MESSAGE)`` lines, most frequent first."""
        ordered = sorted(self.groups.values(), key=lambda g: -g[0])
        out = [
            f"  {count} x {message}" + (f"  (e.g. {example})" if count > 1 else "")
            for count, example, message in ordered[:limit]
        ]
        if len(ordered) > limit:
            rest = sum(c for c, _, _ in ordered[limit:])
            out.append(f"  ... and {rest} more failure(s) of {len(ordered) - limit} other kinds")
        return out
