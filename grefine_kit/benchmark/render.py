"""Rendering a benchmark ``Summary``: Markdown, HTML, JSON and a PNG chart (PIL only).

Marks, as in the paper's tables: **bold** = best, underlined = second best (among the recipe
rows), ``▼`` = negative optimisation (worse than the original images), ``n/a`` = no score.
The ``ablation`` layout is Table 8's: indicator and stage columns, the original images last.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from grefine_kit.benchmark.table import Cell, Row, Summary

__all__ = ["LEGEND", "chart_png", "format_value", "to_html", "to_json", "to_markdown", "write_all"]

LEGEND = (
    "best = bold, second best = underlined (among the recipes), ▼ = negative optimisation "
    "(worse than the original images), n/a = no score; ↑/↓: higher/lower is better."
)
NEGATIVE = "▼"


def format_value(value: float) -> str:
    """The paper's precision: 4 decimals below 10, 3 below 100, 2 above; ``n/a`` for NaN."""
    if math.isnan(value):
        return "n/a"
    size = abs(value)
    return f"{value:.4f}" if size < 10 else f"{value:.3f}" if size < 100 else f"{value:.2f}"


def _ordered(summary: Summary) -> list[Row]:
    rows = list(summary.rows)
    return [*rows[1:], rows[0]] if summary.ablation else rows


def _rate(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.0f}%"


def _header(summary: Summary) -> list[str]:
    lead = ["Indicator", "Stage"] if summary.ablation else ["Recipe"]
    return [*lead, *(f"{m.name} {m.arrow}" for m in summary.metrics), "Neg.", "Win rate"]


def _lead(summary: Summary, row: Row) -> list[str]:
    if summary.ablation:
        return ["Original images", ""] if row.is_original else [f"{row.indicators} ({row.name})", row.stages]
    return ["Original images" if row.is_original else row.name]


def _tail(row: Row) -> list[str]:
    return ["—", "—"] if row.is_original else [str(row.negatives), _rate(row.win_rate)]


def _md_cell(cell: Cell) -> str:
    text = format_value(cell.mean)
    if cell.mark == "best":
        text = f"**{text}**"
    elif cell.mark == "second":
        text = f"<u>{text}</u>"
    return f"{text} {NEGATIVE}" if cell.negative else text


def to_markdown(summary: Summary) -> str:
    """The table as GitHub Markdown, then the legend and the per-metric win rates."""
    header = _header(summary)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in _ordered(summary):
        cells = [format_value(c.mean) if row.is_original else _md_cell(c) for c in row.cells]
        lines.append("| " + " | ".join([*_lead(summary, row), *cells, *_tail(row)]) + " |")
    lines += ["", LEGEND, f"{summary.n_images} image(s); ties within {summary.tolerance:g} (see docs).", ""]
    notes = sorted({m.licence for m in summary.metrics if m.licence})
    if notes:  # e.g. pyiqa's non-commercial terms travel with the numbers they produced
        lines += [f"Licence: {note}." for note in notes] + [""]
    lines += ["Per-image win rate against the original images (wins / images scored in both):", ""]
    lines.append("| Recipe | " + " | ".join(m.name for m in summary.metrics) + " |")
    lines.append("|" + "---|" * (len(summary.metrics) + 1))
    for row in summary.recipes:
        rates = [f"{_rate(c.win_rate)} ({c.wins}/{c.pairs})" for c in row.cells]
        lines.append("| " + " | ".join([row.name, *rates]) + " |")
    return "\n".join(lines) + "\n"


_CSS = """table{border-collapse:collapse;font:14px sans-serif}td,th{border:1px solid #bbb;padding:3px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}.best{font-weight:bold}
.second{text-decoration:underline}.negative{background:#f8d0d0}.original{background:#eee}"""


def to_html(summary: Summary) -> str:
    """A standalone HTML page with the table (classes ``best``, ``second``, ``negative``)."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in _header(summary))
    body = []
    for row in _ordered(summary):
        tds = [f"<td>{esc(v)}</td>" for v in _lead(summary, row)]
        for cell in row.cells:
            classes = [] if row.is_original else [c for c in (cell.mark, "negative" * cell.negative) if c]
            text = format_value(cell.mean) + (f" {NEGATIVE}" if cell.negative else "")
            attr = f' class="{" ".join(classes)}"' if classes else ""
            tds.append(f"<td{attr}>{esc(text)}</td>")
        tds += [f"<td>{esc(v)}</td>" for v in _tail(row)]
        cls = ' class="original"' if row.is_original else ""
        body.append(f"<tr{cls}>{''.join(tds)}</tr>")
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>grefine benchmark</title>"
        f"<style>{_CSS}</style></head><body>\n<table><thead><tr>{head}</tr></thead><tbody>\n"
        + "\n".join(body)
        + f"\n</tbody></table>\n<p>{esc(LEGEND)} {summary.n_images} image(s); ties within "
        f"{summary.tolerance:g}.</p>\n</body></html>\n"
    )


def to_json(summary: Summary, extra: dict[str, Any] | None = None) -> str:
    """The summary (and ``extra``, e.g. the run's configuration) as JSON; NaN becomes null."""
    return json.dumps({**summary.to_json(), **(extra or {})}, indent=2, ensure_ascii=False) + "\n"


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def chart_png(summary: Summary, path: Path, width: int = 900) -> Path:
    """Horizontal bars: each recipe's change per metric, in % of the original's value, signed so
    that right = better (green) and left = worse (red, a negative optimisation)."""
    recipes = summary.recipes
    bar, gap, label_w = 16, 4, 260
    group_h = 22 + len(recipes) * (bar + gap) + 10
    height = 40 + max(1, len(summary.metrics)) * group_h
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(14), _font(12)
    draw.text(
        (10, 10), "change against the original images (% of the original; right = better)", "black", font
    )
    changes = [c.change for r in recipes for c in r.cells if math.isfinite(c.change)]
    scale_max = max((abs(c) for c in changes), default=1.0) or 1.0
    zero_x = label_w + (width - label_w - 70) // 2
    half = (width - label_w - 70) // 2
    y = 40
    for m, info in enumerate(summary.metrics):
        # the bitmap/default fonts have no arrow glyphs: spell the direction out
        direction = "lower is better" if info.lower_better else "higher is better"
        draw.text((10, y), f"{info.name} ({direction})", "black", font)
        y += 22
        for row in recipes:
            cell = row.cells[m]
            draw.text((24, y + 1), row.name[:34], "#333", small)
            if math.isfinite(cell.change):
                length = round(half * cell.change / scale_max)
                colour = "#c0392b" if cell.negative else ("#27ae60" if cell.outcome == "better" else "#999")
                x0, x1 = sorted((zero_x, zero_x + length))
                draw.rectangle((x0, y, max(x1, x0 + 1), y + bar), fill=colour)
                text = f"{cell.change:+.2f}%"
            else:
                text = "n/a"
            draw.text((zero_x + half + 8, y + 1), text, "#333", small)
            y += bar + gap
        draw.line((zero_x, y - len(recipes) * (bar + gap) - 2, zero_x, y), fill="black")
        y += 10
    from grefine_kit.runs.atomic import write_png

    write_png(path, image)
    return path


def write_all(summary: Summary, out_dir: Path, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``summary.md``, ``summary.html``, ``summary.json`` and ``chart.png``; returns the paths."""
    paths = {
        "markdown": out_dir / "summary.md",
        "html": out_dir / "summary.html",
        "json": out_dir / "summary.json",
        "chart": out_dir / "chart.png",
    }
    from grefine_kit.runs.atomic import write_text

    # temp file + rename: an interrupted run never leaves half a table next to the old one
    write_text(paths["markdown"], to_markdown(summary))
    write_text(paths["html"], to_html(summary))
    write_text(paths["json"], to_json(summary, extra))
    chart_png(summary, paths["chart"])
    return paths
