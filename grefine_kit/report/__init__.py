"""``grefine report DIR``: one self-contained HTML page for a refine or score output folder.

Per image: input and refined output side by side with a slider, the PQ/AQ heatmaps with a colour
legend, the mask outline, scores, AQ-Map's per-phrase table with defects, and per-stage strength
and steps; the table sorts by any score. Images are embedded (``data:`` URIs), so the page opens
offline from ``file://``.
"""

from __future__ import annotations

from pathlib import Path

from grefine_kit.report.collect import ReportItem, collect
from grefine_kit.report.html import render

__all__ = ["ReportItem", "build_report", "collect", "render"]


def build_report(
    folder: str | Path,
    out: str | Path | None = None,
    *,
    inputs: str | Path | None = None,
    max_size: int = 320,
) -> Path:
    """Write the report of ``folder`` to ``out`` (default ``folder/report.html``); returns its path.
    ``inputs``: the folder the run's input images are under (see ``collect``)."""
    folder = Path(folder)
    kind, items = collect(folder, Path(inputs) if inputs is not None else None)
    target = Path(out) if out is not None else folder / "report.html"
    title = f"grefine report: {folder.resolve().name}"
    target.write_text(render(kind, items, title=title, max_size=max_size), encoding="utf-8")
    return target.resolve()
