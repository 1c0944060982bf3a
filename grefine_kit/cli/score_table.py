"""``grefine score``'s stdout table: ``file  score`` per image (small runs), then the mean."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import click

#: runs up to this many images print one row per image; larger ones print only the mean
MAX_ROWS = 50


def read_scores(results_path: Path) -> list[tuple[str, float | None, str]]:
    """(file, score or None, error) per row of a score run's results.csv / results.jsonl."""
    rows: list[tuple[str, float | None, str]] = []
    if not results_path.is_file():
        return rows
    with results_path.open(encoding="utf-8", newline="") as fh:
        records = csv.DictReader(fh) if results_path.suffix == ".csv" else map(json.loads, fh)
        for rec in records:
            raw = rec.get("score")
            score = float(raw) if raw not in (None, "") else None
            rows.append((str(rec.get("file", "")), score, str(rec.get("error") or "")))
    return rows


def printable(text: str) -> str:
    """``text`` with every character that is not printable (a newline, a tab, a terminal escape,
    an undecodable byte kept as a surrogate) written as its Python escape (``a\\nb.png``), so one
    row stays one line and a file name cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def print_score_table(results_path: Path, indicator: str) -> None:
    """Print the table on stdout (the results file stays the machine-readable output); names
    and errors are passed through :func:`printable`."""
    rows = [(printable(Path(f).name), s, printable(e)) for f, s, e in read_scores(results_path)]
    if not rows:
        return
    width = max(len(name) for name, _, _ in rows) if len(rows) <= MAX_ROWS else 0
    if len(rows) <= MAX_ROWS:
        click.echo(f"{'file':<{width}}  {printable(indicator)}")
        for name, score, error in rows:
            cell = f"{score:.4f}" if score is not None else f"failed: {error}"
            click.echo(f"{name:<{width}}  {cell}")
    scores = [s for _, s, _ in rows if s is not None and math.isfinite(s)]
    if scores:
        mean = sum(scores) / len(scores)
        click.echo(f"mean {indicator} over {len(scores)} image(s): {mean:.4f}")
