"""Reading an IQA database's opinion scores (AGIQA-3K / AIGIQA-20K style CSV files).

A database may rate several things: AGIQA-3K's ``data.csv`` has ``mos_quality`` (perception)
and ``mos_align`` (text-image alignment). The MOS column is chosen explicitly (``mos_column``) or
by the indicator's kind (``kind``: ``"perceptual"`` -> a quality column, ``"alignment"`` -> an
alignment column); an ambiguous file is refused rather than read with a guess.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.errors import UserError
from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL

__all__ = [
    "ALIGNMENT_MOS_COLUMNS",
    "IMAGE_COLUMNS",
    "MOS_COLUMNS",
    "QUALITY_MOS_COLUMNS",
    "MosRow",
    "choose_mos_column",
    "indicator_kind",
    "read_mos_csv",
    "read_mos_table",
]

IMAGE_COLUMNS = ("image", "name", "file", "filename", "path")
#: MOS columns by what they rate, in order of preference; "mos"/"score" say nothing about what
GENERIC_MOS_COLUMNS = ("mos", "score")
QUALITY_MOS_COLUMNS = ("mos_quality", "mos_perception", "mos_perceptual", "quality")
#: (the last one: a column named after the kind itself)
ALIGNMENT_MOS_COLUMNS = ("mos_align", "mos_alignment", "mos_correspondence", ALIGNMENT)
MOS_COLUMNS = GENERIC_MOS_COLUMNS + QUALITY_MOS_COLUMNS + ALIGNMENT_MOS_COLUMNS
PROMPT_COLUMNS = ("prompt", "text")
KINDS = (PERCEPTUAL, ALIGNMENT)


def indicator_kind(indicator: Any) -> str:
    """``"perceptual"`` or ``"alignment"``: the indicator's declared ``quality_kind``
    (:class:`grefine_kit.parts.base.PartBase`; by default ``"alignment"`` for indicators that need a
    prompt and ``"perceptual"`` for the others)."""
    from grefine_kit.parts.base import as_part

    view = as_part(indicator)
    kind = view.quality_kind
    if kind in KINDS:
        return kind
    return ALIGNMENT if view.needs_prompt else PERCEPTUAL


def choose_mos_column(
    names: list[str], mos_column: str | None = None, kind: str | None = None, source: str = "CSV"
) -> str:
    """The MOS column to read among the (lower-cased) header ``names``.

    ``mos_column`` (case-insensitive) wins and must exist. Otherwise the MOS-like columns
    (``MOS_COLUMNS``) decide: with ``kind``, the first column of that kind, else a generic one
    (``mos``/``score``); a file whose only MOS columns rate the *other* kind is refused. Without
    ``kind``, a single MOS-like column is used and several are refused. Raises ``UserError``."""
    present = [c for c in MOS_COLUMNS if c in names]
    if mos_column is not None:
        wanted = mos_column.strip().lower()
        if wanted not in names:
            raise UserError(
                f"{source}: no column {mos_column!r}; MOS-like columns: {', '.join(present) or 'none'} "
                f"(all columns: {', '.join(names)})"
            )
        return wanted
    if not present:
        raise UserError(
            f"{source}: needs a MOS column ({'/'.join(MOS_COLUMNS)}) or --mos-column NAME; "
            f"found: {', '.join(names) or 'none'}"
        )
    if kind is None:
        if len(present) > 1:
            raise UserError(
                f"{source}: several MOS columns ({', '.join(present)}): choose one with --mos-column"
            )
        return present[0]
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    own = QUALITY_MOS_COLUMNS if kind == PERCEPTUAL else ALIGNMENT_MOS_COLUMNS
    for group in (own, GENERIC_MOS_COLUMNS):
        match = [c for c in group if c in names]
        if match:
            return match[0]
    raise UserError(
        f"{source}: its MOS columns ({', '.join(present)}) do not rate {kind} quality; "
        f"pass --mos-column {present[0]} to correlate with it anyway"
    )


@attrs.frozen
class MosRow:
    """One rated image: its path (resolved against the root), its MOS, its prompt if given."""

    image: Path
    mos: float
    prompt: str | None = None


def _column(names: list[str], wanted: tuple[str, ...]) -> int | None:
    return next((names.index(c) for c in wanted if c in names), None)


def read_mos_csv(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    mos_column: str | None = None,
    kind: str | None = PERCEPTUAL,
) -> list[MosRow]:
    """``read_mos_table`` without the column name; by default the quality MOS (``kind="perceptual"``)."""
    return read_mos_table(path, root, mos_column=mos_column, kind=kind)[0]


def read_mos_table(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    mos_column: str | None = None,
    kind: str | None = None,
) -> tuple[list[MosRow], str]:
    """``(rows, the MOS column used)`` of a CSV with an image column
    (``image``/``name``/``file``/``filename``/``path``), a MOS column (see ``choose_mos_column``)
    and an optional ``prompt``/``text`` column. Image paths are relative to ``root`` (default: the
    CSV's folder). Errors name the file and line."""
    p = Path(path)
    base = Path(root) if root is not None else p.parent
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise UserError(f"{p}: empty CSV (expected a header such as image,mos[,prompt])")
            names = [h.strip().lower() for h in header]
            image_col = _column(names, IMAGE_COLUMNS)
            prompt_col = _column(names, PROMPT_COLUMNS)
            if image_col is None:
                raise UserError(
                    f"{p}: needs an image column ({'/'.join(IMAGE_COLUMNS)}) and a MOS column; "
                    f"found: {', '.join(header) or 'none'}"
                )
            column = choose_mos_column(names, mos_column, kind, str(p))
            mos_col = names.index(column)
            rows: list[MosRow] = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                line = reader.line_num
                try:
                    name, raw = row[image_col].strip(), row[mos_col].strip()
                except IndexError:
                    raise UserError(f"{p}, line {line}: too few fields") from None
                try:
                    mos = float(raw)
                except ValueError:
                    raise UserError(f"{p}, line {line}: MOS {raw!r} is not a number") from None
                if not name or not math.isfinite(mos):
                    raise UserError(f"{p}, line {line}: needs an image name and a finite MOS")
                if "\0" in name:
                    raise UserError(f"{p}, line {line}: the image name holds a NUL byte")
                prompt = row[prompt_col].strip() if prompt_col is not None and prompt_col < len(row) else None
                rows.append(MosRow(base / name, mos, prompt or None))
    except FileNotFoundError:
        raise UserError(f"{p}: no such MOS file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise UserError(f"{p}: not a valid CSV ({exc})") from None
    if not rows:
        raise UserError(f"{p}: no rated images")
    return rows, column
