"""Reading an IQA database's opinion scores (AGIQA-3K / AIGIQA-20K style CSV files)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import attrs

from grefine_kit.errors import UserError

__all__ = ["IMAGE_COLUMNS", "MOS_COLUMNS", "MosRow", "read_mos_csv"]

IMAGE_COLUMNS = ("image", "name", "file", "filename", "path")
MOS_COLUMNS = ("mos", "mos_quality", "score", "quality")
PROMPT_COLUMNS = ("prompt", "text")


@attrs.frozen
class MosRow:
    """One rated image: its path (resolved against the root), its MOS, its prompt if given."""

    image: Path
    mos: float
    prompt: str | None = None


def _column(names: list[str], wanted: tuple[str, ...]) -> int | None:
    return next((names.index(c) for c in wanted if c in names), None)


def read_mos_csv(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[MosRow]:
    """Rows of a CSV with an image column (``image``/``name``/``file``/``filename``/``path``), a MOS
    column (``mos``/``mos_quality``/``score``/``quality``) and an optional ``prompt``/``text``
    column. Image paths are relative to ``root`` (default: the CSV's folder). Errors name the
    file and line."""
    p = Path(path)
    base = Path(root) if root is not None else p.parent
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise UserError(f"{p}: empty CSV (expected a header such as image,mos[,prompt])")
            names = [h.strip().lower() for h in header]
            image_col, mos_col = _column(names, IMAGE_COLUMNS), _column(names, MOS_COLUMNS)
            prompt_col = _column(names, PROMPT_COLUMNS)
            if image_col is None or mos_col is None:
                raise UserError(
                    f"{p}: needs an image column ({'/'.join(IMAGE_COLUMNS)}) and a MOS column "
                    f"({'/'.join(MOS_COLUMNS)}); found: {', '.join(header) or 'none'}"
                )
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
    return rows
