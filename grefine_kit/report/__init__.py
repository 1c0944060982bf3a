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
    ``inputs``: the folder the run's input images are under (see ``collect``).

    The page is written by temp file + rename: a link at ``out`` is replaced, never written
    through. A missing or unwritable target folder is one UserError line."""
    from grefine_kit.errors import UserError
    from grefine_kit.runs import atomic
    from grefine_kit.runs.items import display_path

    for given in (folder, out, inputs):
        if given is not None and "\0" in str(given):
            raise UserError(f"{display_path(str(given).replace(chr(0), '?'))}: a path cannot hold a NUL byte")
    folder = Path(folder)
    kind, items = collect(folder, Path(inputs) if inputs is not None else None)
    target = Path(out) if out is not None else folder / "report.html"
    try:
        if not target.parent.is_dir():
            raise UserError(
                f"{display_path(target)}: the folder {display_path(target.parent)} does not exist"
            )
        if target.is_dir():
            raise UserError(f"{display_path(target)}: a folder; give a file name for the page")
    except OSError as exc:
        raise UserError(f"{display_path(target)}: cannot write the page ({exc.strerror or exc})") from None
    title = f"grefine report: {display_path(folder.resolve().name)}"
    page = render(kind, items, title=title, max_size=max_size)
    try:
        atomic.write_text(target, page)
    except UserError as exc:
        raise UserError(str(exc).replace("; finished items are kept", "")) from None
    return target.absolute()
