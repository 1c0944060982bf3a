"""The results file of ``grefine score``: a CSV or JSON Lines view of the run's records.

``write_results`` rebuilds ``results.csv`` / ``results.jsonl`` whole from the records (one row per
input file, in input order) and writes it atomically; the runner calls it when a run ends.
Columns: docs/scoring.md.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from grefine_kit.runs import atomic

__all__ = ["HEAD_COLUMNS", "RESULTS_NAMES", "TAIL_COLUMNS", "Format", "flatten_details", "write_results"]

Format = Literal["csv", "json"]

HEAD_COLUMNS: Final = ("file", "status", "score")
"""CSV columns before the detail columns (factor scores etc.)."""
TAIL_COLUMNS: Final = ("width", "height", "indicator", "prompt", "heatmap", "map", "error")
"""CSV columns after the detail columns."""

RESULTS_NAMES: Final = {"csv": "results.csv", "json": "results.jsonl"}


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def flatten_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten JSON-able ``details`` into CSV columns.

    ``details["factors"]`` (name -> number, or name -> {"score": number}) gives one column per
    factor under the bare name (``overall``, ``technical`` ...); other scalar entries keep
    their key; a mapping's scalar entries become ``key.sub``; lists and deeper values are left
    to the JSON output. Names that clash with the fixed columns get a ``details.`` prefix.
    """
    flat: dict[str, Any] = {}
    factors = details.get("factors")
    if isinstance(factors, Mapping):
        for name, value in factors.items():
            if isinstance(value, Mapping):
                value = value.get("score")
            if _is_scalar(value):
                flat[str(name)] = value
    for key, value in details.items():
        if key == "factors" and isinstance(factors, Mapping):
            continue
        if _is_scalar(value):
            flat.setdefault(str(key), value)
        elif isinstance(value, Mapping):
            for sub, v in value.items():
                if _is_scalar(v):
                    flat.setdefault(f"{key}.{sub}", v)
    fixed = set(HEAD_COLUMNS) | set(TAIL_COLUMNS)
    return {(f"details.{k}" if k in fixed else k): v for k, v in flat.items()}


# --- writers ---------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format(v, ".6g")
    return str(v)


def _csv_view(records: Sequence[dict[str, Any]]) -> str:
    """The CSV text of ``records``: fixed head and tail columns, detail columns in first-seen order."""
    rows: list[dict[str, str]] = []
    details: list[str] = []
    for record in records:
        row = {k: _cell(v) for k, v in record.items() if k not in ("details", "result")}
        row.update({k: _cell(v) for k, v in flatten_details(record.get("details") or {}).items()})
        rows.append(row)
        details += [k for k in row if k not in HEAD_COLUMNS and k not in TAIL_COLUMNS and k not in details]
    columns = [*HEAD_COLUMNS, *details, *TAIL_COLUMNS]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    w.writerows([[r.get(c, "") for c in columns] for r in rows])
    return buf.getvalue()


def _jsonl_view(records: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records)


_LOG_ONLY = ("id", "fingerprint", "outputs", "redone")


def write_results(path: Path, fmt: Format, records: Sequence[dict[str, Any]]) -> None:
    """(Re)write the results file from ``records`` (log records; log-only keys dropped), atomically."""
    view = [{k: v for k, v in r.items() if k not in _LOG_ONLY} for r in records]
    atomic.write_text(path, _csv_view(view) if fmt == "csv" else _jsonl_view(view))
