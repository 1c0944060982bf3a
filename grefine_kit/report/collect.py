"""Read a ``grefine refine`` or ``grefine score`` output folder into ``ReportItem`` values.

Refine folders hold ``reports.jsonl`` (one JSON report per image, possibly repeated when a run
resumed: the last line per image wins) or ``<stem>.report.json`` files; with ``--save-maps``
also ``<stem>.mask.png`` and the heatmap overlays. Score folders hold ``results.jsonl`` or
``results.csv`` and a heatmap overlay per image. Overlay names are matched by tag
(``<stem>.<tag>.png`` with tag ``pq.heatmap``/``aq.heatmap``, the older ``pq``/``aq``, or
``heatmap``), so folders of this and earlier versions both work.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.errors import UserError

__all__ = ["ReportItem", "collect"]

_TAGS = {
    "pq.heatmap": "PQ-Map",
    "aq.heatmap": "AQ-Map",
    "pq": "PQ-Map",
    "perceptual": "PQ-Map",
    "aq": "AQ-Map",
    "alignment": "AQ-Map",
    "heatmap": "heatmap",
    "map": "heatmap",
}


@attrs.frozen
class ReportItem:
    """One image of a run. ``scores``: name -> value in [0, 1] (1 = good) or None; ``stages``:
    stage name -> its report (strength, steps, steps_run, skipped); ``phrases``: AQ-Map's
    per-phrase rows; paths are absolute or None when the file is not there."""

    name: str
    status: str
    error: str = ""
    prompt: str = ""
    input_path: Path | None = None
    output_path: Path | None = None
    heatmaps: Mapping[str, Path] = attrs.field(factory=dict)
    mask_path: Path | None = None
    scores: Mapping[str, float | None] = attrs.field(factory=dict)
    mask_area: float | None = None
    #: SSIM of the refined image vs its input where the mask left pixels alone (refine records)
    ssim_unmasked: float | None = None
    stages: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    phrases: tuple[Mapping[str, Any], ...] = ()

    @property
    def sort_score(self) -> float | None:
        """The mean of the scores present (what the table sorts by first)."""
        values = [v for v in self.scores.values() if isinstance(v, (int, float)) and math.isfinite(v)]
        return sum(values) / len(values) if values else None


#: ``<stem>.<stage role>.stepNNN.png``: a stage's intermediate preview
_PREVIEW = re.compile(r"(stage[\w-]*)\.step(\d+)")


def _existing(path: Path | None) -> Path | None:
    return path.resolve() if path is not None and path.is_file() else None


def _input_path(value: Any, folder: Path, inputs: Path | None = None) -> Path | None:
    """Where the input ``value`` (a record's ``file``: an absolute path, or the item id, which is
    relative to the inputs' common folder) is: under ``inputs`` when given, else the working
    folder, the run folder or its parent."""
    if not value:
        return None
    path = Path(str(value)).expanduser()
    roots = [inputs] if inputs is not None else [Path.cwd(), folder, folder.parent]
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    return next((p.resolve() for p in candidates if p.is_file()), None)


def _overlays(folder: Path, stem: str) -> tuple[dict[str, Path], Path | None]:
    heatmaps: dict[str, Path] = {}
    mask = None
    for path in sorted(folder.glob(f"{glob_escape(stem)}.*.png")):
        tag = path.name[len(stem) + 1 : -len(".png")]
        if tag == "mask":
            mask = path.resolve()
        elif tag in _TAGS:
            heatmaps.setdefault(_TAGS[tag], path.resolve())
        elif (step := _PREVIEW.fullmatch(tag)) is not None:  # stage option previews
            heatmaps.setdefault(f"{step[1]} step {int(step[2])}", path.resolve())
    return heatmaps, mask


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _phrases(details: Any) -> tuple[Mapping[str, Any], ...]:
    report = details.get("report") if isinstance(details, Mapping) else None
    rows = report.get("phrases") if isinstance(report, Mapping) else None
    return tuple(r for r in rows if isinstance(r, Mapping)) if isinstance(rows, list) else ()


def _number(value: Any) -> float | None:
    """A finite number from a record, else None (missing, null, text, NaN)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _refine_item(rec: Mapping[str, Any], folder: Path, inputs: Path | None) -> ReportItem:
    output = str(rec.get("output") or rec.get("image_id") or rec.get("file") or "?")
    stem = Path(output).stem
    heatmaps, mask = _overlays(folder, stem)
    maps: Mapping[str, Any] = rec["maps"] if isinstance(rec.get("maps"), Mapping) else {}
    alignment = maps.get("alignment")
    scores: Mapping[str, Any] = rec["scores"] if isinstance(rec.get("scores"), Mapping) else {}
    stages = {k: rec[k] for k in ("stage1", "stage2") if isinstance(rec.get(k), Mapping)}
    return ReportItem(
        name=output,
        status=str(rec.get("status", "ok")),
        error=str(rec.get("error") or ""),
        prompt=str(rec.get("prompt") or ""),
        input_path=_input_path(rec.get("file"), folder, inputs),
        output_path=_existing(folder / output) if rec.get("status", "ok") == "ok" else None,
        heatmaps=heatmaps,
        mask_path=mask,
        scores={k: v for k, v in scores.items() if v is None or isinstance(v, (int, float))},
        mask_area=rec.get("mask_area") if isinstance(rec.get("mask_area"), (int, float)) else None,
        ssim_unmasked=_number(rec.get("ssim_unmasked")),
        stages=stages,
        phrases=_phrases(alignment.get("details") if isinstance(alignment, Mapping) else None),
    )


def _score_item(rec: Mapping[str, Any], folder: Path, inputs: Path | None) -> ReportItem:
    file = str(rec.get("file") or "?")
    heatmaps: dict[str, Path] = {}
    if rec.get("heatmap"):
        found = _existing(folder / str(rec["heatmap"]))
        if found is not None:
            heatmaps[str(rec.get("indicator") or "heatmap")] = found
    else:
        heatmaps = _overlays(folder, Path(file).stem)[0]
    raw = rec.get("score")
    score = float(raw) if raw not in (None, "") else None
    return ReportItem(
        name=Path(file).name,
        status=str(rec.get("status", "ok")),
        error=str(rec.get("error") or ""),
        prompt=str(rec.get("prompt") or ""),
        input_path=_input_path(file, folder, inputs),
        heatmaps=heatmaps,
        scores={str(rec.get("indicator") or "score"): score},
        phrases=_phrases(rec.get("details")),
    )


def _jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by an interrupted run: keep the others
            records.append(
                {"file": f"{path.name} line {number}", "status": "error", "error": "unreadable line"}
            )
    return records


def collect(folder: Path, inputs: Path | None = None) -> tuple[str, list[ReportItem]]:
    """The run kind (``"refine"`` or ``"score"``) and its items, in run order. ``inputs``: the
    folder the run's inputs were under (default: look in the working folder, ``folder`` and its
    parent), for the input pictures."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (give the --out folder of grefine refine or score)")
    # a score folder has its results file (and a record log); a refine folder only the log
    if (folder / "results.jsonl").is_file():
        return "score", [_score_item(rec, folder, inputs) for rec in _jsonl(folder / "results.jsonl")]
    if (folder / "results.csv").is_file():
        with (folder / "results.csv").open(encoding="utf-8", newline="") as fh:
            return "score", [_score_item(rec, folder, inputs) for rec in csv.DictReader(fh)]
    if (folder / "reports.jsonl").is_file() or list(folder.glob("*.report.json")):
        if (folder / "reports.jsonl").is_file():
            records = _jsonl(folder / "reports.jsonl")
        else:
            records = [json.loads(p.read_text("utf-8")) for p in sorted(folder.glob("*.report.json"))]
        latest: dict[str, dict[str, Any]] = {}
        for rec in records:  # a rerun appends: the last record of an item wins
            latest[str(rec.get("id") or rec.get("output") or rec.get("file"))] = rec
        return "refine", [_refine_item(rec, folder, inputs) for rec in latest.values()]
    raise UserError(
        f"{folder}: no reports.jsonl, *.report.json, results.jsonl or results.csv here "
        "(give the --out folder of grefine refine or grefine score)"
    )
