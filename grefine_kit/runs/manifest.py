"""Manifests: the items of a run listed in a file (``--manifest FILE``).

Formats, by extension: ``.csv`` (a header row), ``.jsonl`` / ``.ndjson`` (one JSON object a
line), ``.parquet`` (needs ``pyarrow``). Columns (case-insensitive; others are ignored):

=============  =========  ==========================================================
``image``      required   the image file; relative paths are relative to the
                          manifest's folder, so a manifest and its images move together
``id``         optional   unique item id (default: the ``image`` value as written, with
                          ``/`` separators); keys the record log, the shard and the seed
``prompt``     optional   the prompt (refine needs one per item; a blank cell is "none")
``seed``       optional   the item's base seed, an integer 0..2**63-1 (blank: the recipe's)
``reference``  optional   a clean reference image for full-reference metrics (``psnr``,
                          ``ssim``...), the size of ``image``; relative like ``image``
``region``     optional   a region mask (black = outside, white = inside), the size of
                          ``image``, for the region metrics; relative like ``image``
``region_prompts`` opt.   refine: this image's own prompts per region, ``[SEP]``-separated
                          or (JSONL) a list (docs/refiner.md; blank: the recipe's)
=============  =========  ==========================================================

A missing ``image`` column, a duplicate id, a bad seed, a NUL byte in a cell, a JSON list,
object or boolean where text belongs, or an unreadable file is one
:class:`~grefine_kit.errors.UserError` naming the line, before any work. A listed image that
does not exist is not: it becomes that item's error record and the run goes on; so do a
missing reference or region file, one of another size, or a region that is not a mask (checked
when a metric reads them: that item's one-line error, the other items go on).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from grefine_kit.errors import UserError
from grefine_kit.runs.items import Item, display_path

__all__ = ["MANIFEST_FORMATS", "MAX_MANIFEST_BYTES", "read_manifest"]

MANIFEST_FORMATS: Final = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
MAX_MANIFEST_BYTES: Final = 2 * 2**30
"""The largest CSV/JSONL manifest read (2 GiB: tens of millions of rows)."""
MAX_SEED: Final = 2**63 - 1

_COLUMNS: Final = ("id", "image", "prompt", "seed", "reference", "region", "region_prompts")


def read_manifest(path: str | os.PathLike[str]) -> list[Item]:
    """The items listed in ``path``, in file order (see the module docstring)."""
    p = Path(path)
    kind = MANIFEST_FORMATS.get(p.suffix.lower())
    if kind is None:
        raise UserError(
            f"{display_path(p)}: unknown manifest format {p.suffix or '(no extension)'!r}; "
            f"use {', '.join(MANIFEST_FORMATS)}"
        )
    if p.is_dir():
        raise UserError(f"{display_path(p)}: a folder, not a manifest")
    if not p.is_file():
        raise UserError(f"{display_path(p)}: manifest not found")
    try:
        if kind != "parquet" and p.stat().st_size > MAX_MANIFEST_BYTES:
            raise UserError(f"{display_path(p)}: larger than {MAX_MANIFEST_BYTES >> 30} GiB; split it")
        rows = {"csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}[kind](p)
        return _items(p, rows)
    except UnicodeDecodeError as exc:
        raise UserError(f"{display_path(p)}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise UserError(f"{display_path(p)}: cannot read ({exc.strerror or exc})") from None


def _csv_rows(p: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    with open(p, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise UserError(
                    f"{display_path(p)}: empty manifest (expected a header: id,image,prompt,seed)"
                )
            names = [h.strip().lower() for h in header]
            _check_columns(p, names, header)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) > len(names):
                    raise UserError(
                        f"{display_path(p)}, line {reader.line_num}: {len(row)} fields, the header has "
                        f"{len(names)} (quote cells that hold commas)"
                    )
                yield reader.line_num, dict(zip(names, row, strict=False))
        except csv.Error as exc:
            raise UserError(f"{display_path(p)}, line {reader.line_num}: not valid CSV ({exc})") from None


def _jsonl_rows(p: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    checked = False
    with open(p, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise UserError(f"{display_path(p)}, line {line_no}: not valid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{display_path(p)}, line {line_no}: expected a JSON object per line")
            row = {str(k).lower(): v for k, v in obj.items()}
            if not checked:
                _check_columns(p, list(row), list(obj))
                checked = True
            elif "image" not in row:
                raise UserError(f'{display_path(p)}, line {line_no}: no "image" key')
            yield line_no, row
    if not checked:
        raise UserError(f"{display_path(p)}: empty manifest (expected one JSON object per line)")


def _parquet_rows(p: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(
            f"{display_path(p)}: reading Parquet manifests needs pyarrow (pip install pyarrow), "
            "or give the manifest as CSV or JSONL"
        ) from None
    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises its own error types for broken files
        raise UserError(f"{display_path(p)}: not a readable Parquet file ({exc})") from None
    header = list(table.column_names)
    names = [n.lower() for n in header]
    _check_columns(p, names, header)
    columns = {n: table.column(h).to_pylist() for n, h in zip(names, header, strict=True) if n in _COLUMNS}
    for i in range(table.num_rows):
        yield i + 1, {n: values[i] for n, values in columns.items()}


def _check_columns(p: Path, names: list[str], header: list[str]) -> None:
    if "image" not in names:
        found = ", ".join(map(str, header)) or "none"
        raise UserError(
            f"{display_path(p)}: missing column 'image'; found columns: {found}"
            " (expected id, image, prompt, seed)"
        )
    repeated = sorted({n for n in names if names.count(n) > 1 and n in _COLUMNS})
    if repeated:
        raise UserError(f"{display_path(p)}: column {repeated[0]!r} appears twice")


def _text(p: Path, line: int, column: str, value: Any) -> str | None:
    """A cell as text (None when blank). JSON numbers are written as text; lists, objects and
    booleans are refused (never stringified into a file name or a prompt), and so is a NUL
    byte, which no file name or prompt holds."""
    if value is None:
        return None
    if isinstance(value, (bool, list, tuple, dict)) or not isinstance(value, (str, int, float)):
        kind = {bool: "a boolean", list: "a list", tuple: "a list", dict: "an object"}.get(
            type(value), type(value).__name__
        )
        raise UserError(f"{display_path(p)}, line {line}: {column!r} must be text, not {kind}")
    text = str(value).strip()
    if "\x00" in text:
        raise UserError(f"{display_path(p)}, line {line}: the {column!r} cell holds a NUL byte")
    return text or None


def _region_prompts(p: Path, line: int, value: Any) -> str | None:
    """A ``region_prompts`` cell: one ``[SEP]`` text, or (JSONL, Parquet) a list of texts."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        value = " [SEP] ".join(v.strip() for v in value)
    return _text(p, line, "region_prompts", value)


def _side_file(p: Path, line: int, column: str, base: Path, value: Any) -> Path | None:
    """A ``reference`` / ``region`` cell as a path (relative to the manifest's folder, like
    ``image``); None for a blank cell. Whether the file exists is checked when it is read."""
    text = _text(p, line, column, value)
    if text is None:
        return None
    path = Path(text.replace("\\", "/"))
    return path if path.is_absolute() else base / path


def _seed(p: Path, line: int, value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise UserError(f"{display_path(p)}, line {line}: seed must be an integer, not {value!r}")
    try:
        seed = int(value) if not isinstance(value, float) or value.is_integer() else None
        if seed is None:
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"{display_path(p)}, line {line}: seed must be an integer, not {value!r}") from None
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"{display_path(p)}, line {line}: seed must be 0 to 2**63-1, not {seed}")
    return seed


def _items(p: Path, rows: Iterable[tuple[int, Mapping[str, Any]]]) -> list[Item]:
    base = p.resolve().parent
    items: list[Item] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        image = _text(p, line, "image", row.get("image"))
        if image is None:
            raise UserError(f"{display_path(p)}, line {line}: empty 'image' cell")
        image = image.replace("\\", "/")
        item_id = _text(p, line, "id", row.get("id")) or os.path.normpath(image).replace(os.sep, "/")
        if item_id in first_line:
            raise UserError(
                f"{display_path(p)}, line {line}: duplicate id {item_id!r} (first on line "
                f"{first_line[item_id]}); ids must be unique"
            )
        first_line[item_id] = line
        path = Path(image)
        items.append(
            Item(
                id=item_id,
                image=path if path.is_absolute() else base / path,
                prompt=_text(p, line, "prompt", row.get("prompt")),
                seed=_seed(p, line, row.get("seed")),
                reference=_side_file(p, line, "reference", base, row.get("reference")),
                region=_side_file(p, line, "region", base, row.get("region")),
                region_prompts=_region_prompts(p, line, row.get("region_prompts")),
            )
        )
    if not items:
        raise UserError(f"{display_path(p)}: the manifest lists no images")
    return items
