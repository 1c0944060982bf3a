"""The benchmark's score cache: a rerun scores only what is new or changed.

``out_dir/score-cache.jsonl`` holds one JSON line per computed score: the metric (registry name
and a hash of its options), the row, the image id, the scored file's size and modification
time, and the value. A score is reused only when all of these match, so a re-refined image, a
changed option or another metric is scored again. NaN (a failure) is never cached: it is
retried. A torn last line (a crash mid-write) is ignored, and the next write starts on a new line
after it, so it never swallows a good record.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ScoreCache", "metric_key"]

CACHE_NAME = "score-cache.jsonl"


def metric_key(name: str, options: Mapping[str, Any]) -> str:
    """``name`` + a short hash of its options (sorted JSON): what a cached score was made with."""
    blob = json.dumps(dict(options), sort_keys=True, default=str)
    return f"{name}#{hashlib.sha256(blob.encode('utf-8')).hexdigest()[:12]}"


def _stamp(path: Path) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


class ScoreCache:
    """Cached scores keyed by (metric key, row, image id, file stamp)."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self._values: dict[tuple[str, str, str, str], float] = {}
        if enabled and path.is_file():
            for line in path.read_text("utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                    key = (rec["metric"], rec["row"], rec["id"], rec["stamp"])
                    self._values[key] = float(rec["value"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn or foreign line: score again

    def get(self, metric: str, row: str, ident: str, file: Path) -> float | None:
        stamp = _stamp(file)
        if not self.enabled or stamp is None:
            return None
        return self._values.get((metric, row, ident, stamp))

    def put_many(self, records: list[tuple[str, str, str, Path, float]]) -> None:
        """Append ``(metric, row, id, file, value)`` records (finite values only) in one write."""
        lines = []
        for metric, row, ident, file, value in records:
            stamp = _stamp(file)
            if stamp is None or not math.isfinite(value):
                continue
            self._values[(metric, row, ident, stamp)] = value
            lines.append(
                json.dumps({"metric": metric, "row": row, "id": ident, "stamp": stamp, "value": value})
            )
        if lines:
            # a torn last line (a crash mid-write) is closed first, so that it stays one
            # unreadable line instead of swallowing the first record of this write
            lead = "" if _ends_a_line(self.path) else "\n"
            with self.path.open("a", encoding="utf-8") as f:
                f.write(lead + "\n".join(lines) + "\n")


def _ends_a_line(path: Path) -> bool:
    """True when ``path`` is missing, empty or ends with a newline."""
    try:
        with path.open("rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return True
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
    except FileNotFoundError:
        return True
