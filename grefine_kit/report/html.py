"""Render ``ReportItem`` values as one self-contained HTML page.

Every image is embedded as a ``data:`` URI (downscaled to ``max_size`` pixels on its long side),
so the page works from ``file://``, offline, copied anywhere, with no CDN and no other file.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from grefine_kit.parts.roles import STAGE1
from grefine_kit.report.collect import ReportItem
from grefine_kit.report.page import SCRIPT, STYLE

__all__ = ["RANDOM_NOTE", "render"]

RANDOM_NOTE = (
    "random-weight model (a test or demo setup): these maps and scores are meaningless; "
    "use a recipe with trained weights for real results"
)


def _uri(image: Image.Image, fmt: str = "JPEG") -> str:
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buf, "JPEG", quality=85)
    else:
        image.save(buf, "PNG", optimize=True)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _thumb(path: Path | None, max_size: int) -> Image.Image | None:
    if path is None:
        return None
    from grefine_kit.images.loading import load_image

    try:
        image = load_image(path)
    except Exception:  # an unreadable file becomes a note in the page, never a failed report
        return None
    image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    return image


def _outline(base: Image.Image, mask_path: Path) -> Image.Image | None:
    """``base`` with the mask's border drawn in magenta (the mask is white = repainted)."""
    try:
        mask = Image.open(mask_path).convert("L").resize(base.size, Image.Resampling.NEAREST)
    except OSError:
        return None
    # pad with "not repainted" so a mask reaching the image's border is outlined there too
    binary = np.pad(np.asarray(mask) >= 128, 1)
    grown = np.asarray(Image.fromarray(binary).filter(ImageFilter.MaxFilter(3)), bool)
    shrunk = np.asarray(Image.fromarray(binary).filter(ImageFilter.MinFilter(3)), bool)
    edge = (grown != shrunk)[1:-1, 1:-1]
    edge |= np.roll(edge, 1, axis=0) | np.roll(edge, 1, axis=1)  # 2 px wide: visible when downscaled
    pixels = np.asarray(base.convert("RGB")).copy()
    pixels[edge] = (255, 0, 255)
    return Image.fromarray(pixels)


def _legend() -> str:
    from grefine_kit.images.heatmaps import colorize_map

    ramp = colorize_map(np.tile(np.linspace(0.0, 1.0, 256, dtype=np.float32), (12, 1)))
    return (
        '<div class="legend"><img alt="colour legend" src="'
        + _uri(Image.fromarray(ramp), "PNG")
        + '"><span>0 bad &nbsp;&mdash;&nbsp; map value &nbsp;&mdash;&nbsp; 1 good</span></div>'
    )


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "&ndash;" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _img(uri: str, alt: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{html.escape(alt)}" src="{uri}">'


def _images_cell(item: ReportItem, max_size: int) -> str:
    if item.status != "ok" and item.input_path is None:
        return "&ndash;"
    before = _thumb(item.input_path, max_size)
    after = _thumb(item.output_path, max_size)
    if before is not None and after is not None:
        after = after.resize(before.size) if after.size != before.size else after
        return (
            '<div class="cmp">'
            + _img(_uri(before), f"{item.name} input")
            + _img(_uri(after), f"{item.name} refined", "after")
            + '<span class="tag" style="left:4px">input</span>'
            + '<span class="tag" style="right:4px">refined</span>'
            + '<input type="range" min="0" max="100" value="50" aria-label="before/after"></div>'
        )
    single = after or before
    if single is None:
        what = "unreadable image" if item.input_path is not None else "image not found"
        return f'<span class="error">{what}</span>'
    return _img(_uri(single), f"{item.name} {'refined' if after else 'input'}")


def _maps_cell(item: ReportItem, max_size: int) -> str:
    parts = []
    for label, path in item.heatmaps.items():
        thumb = _thumb(path, max_size * 2 // 5)
        if thumb is not None:
            figure = _img(_uri(thumb), f"{item.name} {label}")
            parts.append(f"<figure>{figure}<figcaption>{html.escape(label)}</figcaption></figure>")
    base = _thumb(item.input_path, max_size * 2 // 5)
    if item.mask_path is not None and base is not None:
        outlined = _outline(base, item.mask_path)
        if outlined is not None:
            area = f" ({item.mask_area:.0%})" if item.mask_area is not None else ""
            parts.append(
                f"<figure>{_img(_uri(outlined), f'{item.name} mask')}<figcaption>mask outline{area}"
                "</figcaption></figure>"
            )
    if not parts and item.status != "ok":
        return "&ndash;"
    if not parts:
        return '<span class="meta">no maps saved (refine with --maps)</span>'
    return f'<div class="maps">{"".join(parts)}</div>'


def _stages_cell(item: ReportItem) -> str:
    if not item.stages:
        return "&ndash;"
    rows = ["<tr><th>stage</th><th>strength</th><th>steps run / schedule</th></tr>"]
    for name, stage in item.stages.items():
        if not isinstance(stage, Mapping):
            continue
        skipped = stage.get("skipped")
        run = (
            f"skipped: {html.escape(str(skipped))}"
            if skipped
            else (f"{_fmt(stage.get('steps_run'))} / {_fmt(stage.get('steps'))}")
        )
        rows.append(
            f"<tr><td>{html.escape(str(name))}</td><td class='num'>{_fmt(stage.get('strength'), 3)}</td>"
            f"<td>{run}</td></tr>"
        )
    return f'<table class="small">{"".join(rows)}</table>'


def _fidelity_cell(item: ReportItem) -> str:
    """The ``<stem>.fidelity.json`` figures (against a clean reference), when there are any."""
    if not item.fidelity:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td class='num'>{_fmt(v)}</td></tr>" for k, v in item.fidelity.items()
    )
    head = "<tr><th colspan=2>vs reference</th></tr>"
    return f'<div style="margin-top:.4em"><table class="small">{head}{rows}</table></div>'


def _regions_cell(item: ReportItem) -> str:
    """Stage 1's regions: index, label, area, score, the prompt used (and where it came from)
    or why the region was left alone."""
    stage1 = item.stages.get(STAGE1)
    regions = stage1.get("regions") if isinstance(stage1, Mapping) else None
    if not isinstance(regions, list) or not regions:
        return ""
    rows = ["<tr><th>region</th><th>label</th><th>area</th><th>score</th><th>prompt</th></tr>"]
    for r in regions:
        if not isinstance(r, Mapping):
            continue
        used = f"{_fmt(r.get('prompt'))} <span class='meta'>({_fmt(r.get('prompt_source'))})</span>"
        if r.get("skipped"):
            used = f"skipped: {html.escape(str(r['skipped']))}"
        rows.append(
            f"<tr><td class='num'>{_fmt(r.get('index'))}</td><td>{_fmt(r.get('label'))}</td>"
            f"<td class='num'>{_fmt(r.get('area'), 3)}</td><td class='num'>{_fmt(r.get('score'), 3)}</td>"
            f"<td>{used}</td></tr>"
        )
    return f'<table class="small" style="margin-top:.4em">{"".join(rows)}</table>'


def _unmasked_line(item: ReportItem) -> str:
    """``ssim-unmasked 0.998``: how much the refiner changed what its mask left alone."""
    if item.ssim_unmasked is None:
        return ""
    tip = "SSIM of the refined image vs its input where the mask left pixels alone"
    return f'<div class="meta" title="{tip}">ssim-unmasked {item.ssim_unmasked:.4f}</div>'


def _phrases_cell(item: ReportItem) -> str:
    if not item.phrases:
        return "&ndash;"
    rows = ["<tr><th>phrase</th><th>noun</th><th>ancestor</th><th>a_ph</th><th>a_pn</th><th>defect</th></tr>"]
    for p in item.phrases:
        defect = p.get("defect")
        mark = f'<span class="defect">{html.escape(str(defect))}</span>' if defect else "&ndash;"
        rows.append(
            f"<tr><td>{_fmt(p.get('text'))}</td><td>{_fmt(p.get('noun'))}</td><td>{_fmt(p.get('ancestor'))}</td>"
            f"<td class='num'>{_fmt(p.get('phrase_score'), 3)}</td>"
            f"<td class='num'>{_fmt(p.get('noun_score'), 3)}</td>"
            f"<td>{mark}</td></tr>"
        )
    return f'<table class="small">{"".join(rows)}</table>'


def _row(item: ReportItem, score_names: Sequence[str], max_size: int, one_score: bool = False) -> str:
    data = {"name": item.name, "score": item.sort_score}
    data.update({f"s{i}": item.scores.get(n) for i, n in enumerate(score_names)})
    attrs_text = " ".join(f'data-{k}="{html.escape("" if v is None else str(v))}"' for k, v in data.items())
    head = f'<div class="name">{html.escape(item.name)}</div>'
    if item.prompt:
        head += f'<div class="prompt">{html.escape(item.prompt)}</div>'
    if item.status != "ok":
        head += f'<div class="error">{html.escape(item.status)}: {html.escape(item.error)}</div>'
    if item.random_weights:
        head += '<div class="warn">random weights: maps and scores are meaningless</div>'
    cells = [head, f"<span class='num'>{_fmt(item.sort_score)}</span>"]
    if not one_score:  # one score column only: it is the sort column itself
        cells += [f"<span class='num'>{_fmt(item.scores.get(n))}</span>" for n in score_names]
    cells += [
        _images_cell(item, max_size),
        _maps_cell(item, max_size),
        (
            f"<div>{_stages_cell(item)}{_regions_cell(item)}</div>"
            f'<div style="margin-top:.4em">{_phrases_cell(item)}</div>'
            if item.stages
            else _phrases_cell(item)
        )
        + _unmasked_line(item)
        + _fidelity_cell(item),
    ]
    return f"<tr {attrs_text}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render(kind: str, items: Sequence[ReportItem], *, title: str, max_size: int = 320) -> str:
    """The page for ``items`` of a ``kind`` (``refine``/``score``) run."""
    names: list[str] = []
    for item in items:
        names += [n for n in item.scores if n not in names]
    n_ok = sum(item.status == "ok" for item in items)
    # a score run has one score per image: its column is the sort column (no duplicate)
    one_score = kind == "score" and len(names) == 1
    if one_score:
        head, keys = ["image", names[0]], ["name", "score"]
    else:
        head = ["image", "score" if kind == "score" else "mean score", *names]
        keys = ["name", "score", *(f"s{i}" for i in range(len(names)))]
    header = "".join(f'<th data-key="{k}">{html.escape(h)}</th>' for k, h in zip(keys, head, strict=True))
    header += "<th>image</th>" if kind == "score" else "<th>input / refined</th>"
    header += (
        "<th>maps</th><th>phrases (AQ-Map)</th>"
        if kind == "score"
        else ("<th>maps</th><th>stages; phrases (AQ-Map)</th>")
    )
    rows = "\n".join(_row(item, names, max_size, one_score) for item in items)
    banner = ""
    if any(item.random_weights for item in items):
        banner = f'<div class="warn banner">{RANDOM_NOTE}</div>'
    what = "refine" if kind == "refine" else "score"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="meta">grefine {what} run: {len(items)} image(s), {n_ok} ok, {len(items) - n_ok} failed;
generated {stamp}. Click a column title to sort. Scores and maps: 1 = good.</div>
{banner}{_legend()}
<table class="items"><thead><tr>{header}</tr></thead>
<tbody>
{rows}
</tbody></table>
<pre id="selftest" hidden></pre>
<script>{SCRIPT}</script>
</body></html>
"""
