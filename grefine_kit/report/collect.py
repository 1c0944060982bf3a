"""Read a ``grefine refine`` or ``grefine score`` output folder into ``ReportItem`` values.

Both kinds of run folder hold ``reports.jsonl``, the record log (one JSON record per image,
possibly repeated when a run resumed: the last line per image wins). It is read first: it has
every field (AQ-Map's phrases too) and is there even when a run was interrupted before writing
its results file. A refine record names its ``output``; a score record does not. Without a log,
refine folders are read from ``<stem>.report.json`` files and score folders from
``results.jsonl`` or ``results.csv``. Overlay names are matched by tag (``<stem>.<tag>.png``
with tag ``pq.heatmap``/``aq.heatmap``, the older ``pq``/``aq``, or ``heatmap``), so folders
of this and earlier versions both work.

Malformed content never stops the page: a line that is not a JSON object, a truncated report
file or a score that is not a number becomes that row's error or a blank. Files in the folder
are never read through a symbolic link (a link planted there could pull any file on the disk
into the page).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.errors import UserError
from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL, STAGE_ROLES
from grefine_kit.runs.items import display_path

__all__ = ["ReportItem", "collect"]

_TAGS = {
    "pq.heatmap": "PQ-Map",
    "aq.heatmap": "AQ-Map",
    "pq": "PQ-Map",
    PERCEPTUAL: "PQ-Map",
    "aq": "AQ-Map",
    ALIGNMENT: "AQ-Map",
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
    #: the maps come from a model with random weights (a test or demo setup): meaningless
    random_weights: bool = False
    #: full-reference figures written next to the output (``<stem>.fidelity.json``, e.g. by
    #: ``grefine demo``: PSNR inside the defect and SSIM outside it against a clean original)
    fidelity: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def sort_score(self) -> float | None:
        """The mean of the scores present (what the table sorts by first)."""
        values = [v for v in self.scores.values() if isinstance(v, (int, float)) and math.isfinite(v)]
        return sum(values) / len(values) if values else None


#: ``<stem>.<stage role>.stepNNN.png``: a stage's intermediate preview
_PREVIEW = re.compile(r"(stage[\w-]*)\.step(\d+)")


def _existing(path: Path | None) -> Path | None:
    """``path`` (absolute) when it is a regular file in the folder, not a link."""
    if path is None or path.is_symlink() or not path.is_file():
        return None
    return path.absolute()


def _own(folder: Path, name: Any) -> Path | None:
    """The run folder's own file ``name`` (a bare file name: a record naming ``../x.png`` or an
    absolute path cannot pull other files into the page), if it is there."""
    text = str(name or "")
    if not text or "/" in text or "\0" in text or text in (".", ".."):
        return None
    return _existing(folder / text)


def _number(value: Any) -> float | None:
    """A score as a float; None when blank or not a number (a hand-edited ``score=abc``)."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _random_weights(*details: Any) -> bool:
    """True when a map's details name a random-weight backbone (``grefine-tiny/random``)."""
    return any(isinstance(d, Mapping) and "random" in str(d.get("backbone") or "").lower() for d in details)


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
        if _existing(path) is None:
            continue
        if tag == "mask":
            mask = path.absolute()
        elif tag in _TAGS:
            heatmaps.setdefault(_TAGS[tag], path.absolute())
        elif (step := _PREVIEW.fullmatch(tag)) is not None:  # stage option previews
            heatmaps.setdefault(f"{step[1]} step {int(step[2])}", path.absolute())
    return heatmaps, mask


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _phrases(details: Any) -> tuple[Mapping[str, Any], ...]:
    report = details.get("report") if isinstance(details, Mapping) else None
    rows = report.get("phrases") if isinstance(report, Mapping) else None
    return tuple(r for r in rows if isinstance(r, Mapping)) if isinstance(rows, list) else ()


def _fidelity(path: Path) -> Mapping[str, Any]:
    """The figures of a ``<stem>.fidelity.json`` file ({} when there is none or it is unreadable)."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, Mapping):
        return {}
    return {
        str(k): v for k, v in data.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)
    }


def _stage_names(rec: Mapping[str, Any]) -> list[str]:
    """The record's stage entries: the built-in stages, then a recipe's extra stages (blocks
    whose entry is a stage report, with ``steps_run``)."""
    blocks = rec.get("blocks") if isinstance(rec.get("blocks"), list) else []
    extra = [str(b).split(" (")[0] for b in blocks or ()]
    return [
        k
        for k in dict.fromkeys([*STAGE_ROLES, *extra])
        if k in STAGE_ROLES or (isinstance(rec.get(k), Mapping) and "steps_run" in rec[k])
    ]


def _refine_item(rec: Mapping[str, Any], folder: Path, inputs: Path | None) -> ReportItem:
    output = str(rec.get("output") or rec.get("image_id") or rec.get("file") or "?")
    stem = Path(output).stem
    heatmaps, mask = _overlays(folder, stem)
    maps: Mapping[str, Any] = rec["maps"] if isinstance(rec.get("maps"), Mapping) else {}
    alignment = maps.get(ALIGNMENT)
    scores: Mapping[str, Any] = rec["scores"] if isinstance(rec.get("scores"), Mapping) else {}
    stages = {k: rec[k] for k in _stage_names(rec) if isinstance(rec.get(k), Mapping)}
    details = [m.get("details") for m in maps.values() if isinstance(m, Mapping)]
    return ReportItem(
        name=output,
        status=str(rec.get("status", "ok")),
        error=str(rec.get("error") or ""),
        prompt=str(rec.get("prompt") or ""),
        input_path=_input_path(rec.get("file"), folder, inputs),
        output_path=_own(folder, output) if rec.get("status", "ok") == "ok" else None,
        heatmaps=heatmaps,
        mask_path=mask,
        scores={str(k): _number(v) for k, v in scores.items() if v is None or _number(v) is not None},
        mask_area=_number(rec.get("mask_area")),
        ssim_unmasked=_number(rec.get("ssim_unmasked")),
        stages=stages,
        phrases=_phrases(alignment.get("details") if isinstance(alignment, Mapping) else None),
        random_weights=_random_weights(*details),
        fidelity=_fidelity(folder / f"{stem}.fidelity.json"),
    )


def _score_item(rec: Mapping[str, Any], folder: Path, inputs: Path | None) -> ReportItem:
    file = str(rec.get("file") or "?")
    heatmaps: dict[str, Path] = {}
    if rec.get("heatmap"):
        found = _own(folder, rec["heatmap"])
        if found is not None:
            heatmaps[str(rec.get("indicator") or "heatmap")] = found
    else:
        heatmaps = _overlays(folder, Path(file).stem)[0]
    raw = rec.get("score")
    score = _number(raw)
    error = str(rec.get("error") or "")
    status = str(rec.get("status", "ok"))
    if score is None and raw not in (None, "") and status == "ok":
        status, error = "error", f"score {str(raw)[:40]!r} is not a number"
    backbone = rec.get("backbone")  # results.csv flattens the details into columns
    details = rec.get("details") if isinstance(rec.get("details"), Mapping) else {"backbone": backbone}
    return ReportItem(
        name=Path(file).name,
        status=status,
        error=error,
        prompt=str(rec.get("prompt") or ""),
        input_path=_input_path(file, folder, inputs),
        heatmaps=heatmaps,
        scores={str(rec.get("indicator") or "score"): score},
        phrases=_phrases(rec.get("details")),
        random_weights=_random_weights(details),
    )


def _read_text(path: Path) -> str:
    """A file of the folder as text, never through a link; a problem is one UserError line."""
    if path.is_symlink():
        raise UserError(f"{display_path(path)} is a symbolic link; grefine report reads no file through one")
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise UserError(f"{display_path(path)}: cannot read ({exc.strerror or exc})") from None


def _unreadable(where: str, why: str) -> dict[str, Any]:
    return {"file": where, "status": "error", "error": why}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:  # a line cut by an interrupted run: keep the others
            rec = _unreadable(f"{path.name} line {number}", "unreadable line")
        if not isinstance(rec, dict):
            rec = _unreadable(f"{path.name} line {number}", f"not a record (a JSON {type(rec).__name__})")
        records.append(rec)
    return records


def _report_files(folder: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(folder.glob("*.report.json")):
        try:
            rec = json.loads(_read_text(path))
        except ValueError:
            rec = None
        records.append(rec if isinstance(rec, dict) else _unreadable(path.name, "unreadable report file"))
    return records


def _csv(path: Path) -> list[dict[str, Any]]:
    try:
        return [dict(row) for row in csv.DictReader(io.StringIO(_read_text(path), newline=""))]
    except csv.Error as exc:
        raise UserError(f"{display_path(path)}: not a readable CSV file ({exc})") from None


def _latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for rec in records:  # a rerun appends: the last record of an item wins
        latest[str(rec.get("id") or rec.get("output") or rec.get("file"))] = rec
    return list(latest.values())


def _kind(records: list[dict[str, Any]]) -> str:
    """``refine`` when a record names a refined ``output`` (refine records always do)."""
    return "refine" if any("output" in rec for rec in records) else "score"


def collect(folder: Path, inputs: Path | None = None) -> tuple[str, list[ReportItem]]:
    """The run kind (``"refine"`` or ``"score"``) and its items, in run order. ``inputs``: the
    folder the run's inputs were under (default: look in the working folder, ``folder`` and its
    parent), for the input pictures."""
    folder = Path(folder)
    try:
        is_folder = folder.is_dir()
    except (OSError, ValueError) as exc:  # a name too long for the disk, a NUL byte
        why = getattr(exc, "strerror", None) or "not a usable path"
        raise UserError(f"{display_path(str(folder).replace(chr(0), '?'))}: {why}") from None
    if not is_folder:
        raise UserError(
            f"{display_path(folder)}: not a folder (give the --out folder of grefine refine or score)"
        )
    log = folder / "reports.jsonl"
    if log.is_file() or log.is_symlink():
        records = _latest(_jsonl(log))
        kind = _kind(records)
    elif list(folder.glob("*.report.json")):
        records, kind = _latest(_report_files(folder)), "refine"
    elif (folder / "results.jsonl").is_file():
        records, kind = _jsonl(folder / "results.jsonl"), "score"
    elif (folder / "results.csv").is_file():
        records, kind = _csv(folder / "results.csv"), "score"
    else:
        raise UserError(
            f"{display_path(folder)}: no reports.jsonl, *.report.json, results.jsonl or results.csv "
            "here (give the --out folder of grefine refine or grefine score)"
        )
    make = _refine_item if kind == "refine" else _score_item
    return kind, [make(rec, folder, inputs) for rec in records]
