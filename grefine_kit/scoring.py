"""The batch scoring runner behind ``grefine score`` (outputs: docs/scoring.md).

One row per input file, in input order, written to ``results.csv`` or ``results.jsonl`` in
the output folder after each batch and flushed, so a crash keeps every finished batch. A
bad image (unreadable, too large, no prompt for a prompt-needing indicator) becomes an error
row and the run goes on; when the indicator raises on a batch, that batch is re-scored one
image at a time so one bad image cannot sink the others. An indicator raising a
``UserError`` that is not an ``ImageError`` (missing weights, bad options) stops the run:
that is a setup problem every image would hit.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final, Literal

import attrs
from PIL import Image
from tqdm import tqdm

from grefine_kit.errors import ImageError, UserError
from grefine_kit.images import (
    FROM_ENV,
    MaxPixels,
    load_image,
    overlay_heatmap,
    resolve_max_pixels,
    save_map_npy,
)
from grefine_kit.indicators.base import Indicator
from grefine_kit.inputs import PromptIndex, make_output_dir
from grefine_kit.types import QualityMap

__all__ = ["HEAD_COLUMNS", "TAIL_COLUMNS", "ScoreSummary", "flatten_details", "output_stems", "score_files"]

Format = Literal["csv", "json"]

HEAD_COLUMNS: Final = ("file", "status", "score")
"""CSV columns before the detail columns (factor scores etc.)."""
TAIL_COLUMNS: Final = ("width", "height", "indicator", "prompt", "heatmap", "map", "error")
"""CSV columns after the detail columns."""

RESULTS_NAMES: Final = {"csv": "results.csv", "json": "results.jsonl"}


@attrs.frozen
class ScoreSummary:
    """What a scoring run did. ``exit_code``: 0 all images ok, 1 some failed."""

    n_ok: int
    n_failed: int
    results_path: Path
    out_dir: Path

    @property
    def n_total(self) -> int:
        return self.n_ok + self.n_failed

    @property
    def exit_code(self) -> int:
        return 1 if self.n_failed else 0


def output_stems(paths: Sequence[Path]) -> list[str]:
    """Base names for each file's outputs (``<stem>.heatmap.png``, ``<stem>.map.npy``).

    A stem shared (case-insensitively) by several inputs, e.g. ``a/cat.png`` and
    ``b/cat.jpg``, gets ``-<8 hex of sha1(path as given)>`` appended for every one of them,
    so names depend only on the paths, never on their order.
    """
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem.casefold()] = counts.get(p.stem.casefold(), 0) + 1
    out: list[str] = []
    taken: set[str] = {p.stem.casefold() for p in paths if counts[p.stem.casefold()] == 1}
    for p in paths:
        if counts[p.stem.casefold()] == 1:
            out.append(p.stem)
            continue
        digest = hashlib.sha1(p.as_posix().encode("utf-8")).hexdigest()
        n = 8
        while f"{p.stem}-{digest[:n]}".casefold() in taken and n < len(digest):
            n += 4  # a real stem that looks like our suffix: lengthen until unique
        name = f"{p.stem}-{digest[:n]}"
        taken.add(name.casefold())
        out.append(name)
    return out


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def flatten_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten JSON-able ``details`` into CSV columns.

    ``details["factors"]`` (name -> number, or name -> {"score": number}) gives one column per
    factor under the bare name (``overall``, ``technical`` ...); other scalar entries keep
    their key; a mapping's scalar entries become ``key.sub``; lists and deeper values are left
    to the JSON output. Names that clash with the fixed columns get a ``details.`` prefix.
    """
    flat: dict[str, Any] = {}
    factors = details.get("factors")
    if isinstance(factors, Mapping):
        for name, value in factors.items():
            if isinstance(value, Mapping):
                value = value.get("score")
            if _is_scalar(value):
                flat[str(name)] = value
    for key, value in details.items():
        if key == "factors" and isinstance(factors, Mapping):
            continue
        if _is_scalar(value):
            flat.setdefault(str(key), value)
        elif isinstance(value, Mapping):
            for sub, v in value.items():
                if _is_scalar(v):
                    flat.setdefault(f"{key}.{sub}", v)
    fixed = set(HEAD_COLUMNS) | set(TAIL_COLUMNS)
    return {(f"details.{k}" if k in fixed else k): v for k, v in flat.items()}


# --- writers ---------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format(v, ".6g")
    return str(v)


class _CsvWriter:
    """Streams rows; when a row brings new detail columns the file is rewritten once with the
    wider header (written to a temporary file and renamed, so it is never half-written)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.details: list[str] = []
        self.rows: list[dict[str, str]] = []
        self.f: IO[str] = self._rewrite()

    @property
    def columns(self) -> list[str]:
        return [*HEAD_COLUMNS, *self.details, *TAIL_COLUMNS]

    def _rewrite(self) -> IO[str]:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(self.columns)
            w.writerows([[r.get(c, "") for c in self.columns] for r in self.rows])
        os.replace(tmp, self.path)
        return self.path.open("a", newline="", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        row = {k: _cell(v) for k, v in record.items() if k not in ("details", "result")}
        row.update({k: _cell(v) for k, v in flatten_details(record.get("details") or {}).items()})
        self.rows.append(row)
        new = [k for k in row if k not in HEAD_COLUMNS and k not in TAIL_COLUMNS and k not in self.details]
        if new:
            self.f.close()
            self.details.extend(new)
            self.f = self._rewrite()
        else:
            csv.writer(self.f).writerow([row.get(c, "") for c in self.columns])
            self.f.flush()

    def close(self) -> None:
        self.f.close()


class _JsonlWriter:
    """JSON Lines: one complete JSON object per line, appended and flushed per row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f: IO[str] = path.open("w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.f.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


# --- the runner ------------------------------------------------------------------------


@attrs.frozen
class _Item:
    index: int
    path: Path
    stem: str
    prompt: str | None
    image: Image.Image | None = None


def _check_result(qm: Any, image: Image.Image) -> QualityMap:
    if not isinstance(qm, QualityMap):
        raise TypeError(f"the indicator returned a {type(qm).__name__}, not a QualityMap")
    if qm.size != image.size:
        w, h = image.size
        raise ValueError(f"the indicator returned a {qm.size[0]}x{qm.size[1]} map for a {w}x{h} image")
    return qm


def _score(indicator: Indicator, items: list[_Item]) -> list[QualityMap | Exception]:
    """Score ``items`` in one call; on failure, one image at a time."""
    images = [it.image for it in items if it.image is not None]
    prompts = [it.prompt or "" for it in items] if indicator.needs_prompt else None
    try:
        results = list(indicator.score(images, prompts))
        if len(results) != len(images):
            raise ValueError(f"the indicator returned {len(results)} results for {len(images)} images")
    except Exception as e:
        if isinstance(e, UserError) and not isinstance(e, ImageError):
            raise  # setup problem (weights, options): every image would fail the same way
        if len(items) == 1:
            return [e]
        return [r for it in items for r in _score(indicator, [it])]
    out: list[QualityMap | Exception] = []
    for qm, image in zip(results, images, strict=True):
        try:
            out.append(_check_result(qm, image))
        except (TypeError, ValueError) as e:
            out.append(e)
    return out


def _error_message(e: BaseException) -> str:
    # our own errors carry a complete message; others get their type for context
    text = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
    return " ".join(text.split())  # one line per row


def score_files(
    paths: Sequence[Path],
    indicator: Indicator,
    out_dir: Path,
    *,
    prompts: Mapping[str, str] | str | None = None,
    fmt: Format = "csv",
    batch_size: int = 8,
    progress: bool = True,
    save_maps: bool = True,
    max_pixels: MaxPixels = FROM_ENV,
) -> ScoreSummary:
    """Score ``paths`` with ``indicator`` and write results into ``out_dir`` (created).

    ``prompts``: one prompt for every image, or a mapping read by ``read_prompts_csv``
    (matched with :class:`~grefine_kit.inputs.PromptIndex`). ``fmt``: ``"csv"`` ->
    ``results.csv``, ``"json"`` -> ``results.jsonl``. ``save_maps``: write
    ``<stem>.heatmap.png`` (overlay, same size as the image) and ``<stem>.map.npy``
    (float32 (H, W), 1 = good) per scored image. ``max_pixels``: as in ``load_image``.
    Raises UserError for bad arguments; per-image problems become error rows.
    """
    if fmt not in RESULTS_NAMES:
        raise UserError(f"unknown format {fmt!r}; choose csv or json")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch size must be a positive integer; got {batch_size!r}")
    if not paths:
        raise UserError("no images to score")
    out_dir = make_output_dir(out_dir)
    run = _Run(
        indicator=indicator,
        out_dir=out_dir,
        prompts=PromptIndex(prompts) if isinstance(prompts, Mapping) else prompts,
        save_maps=save_maps,
        # a bad GREFINE_MAX_PIXELS fails once, here, not once per image
        limit=resolve_max_pixels(max_pixels),
    )
    results_path = out_dir / RESULTS_NAMES[fmt]
    writer = _CsvWriter(results_path) if fmt == "csv" else _JsonlWriter(results_path)
    stems = output_stems(list(paths))
    n_ok = n_failed = 0
    bar = tqdm(total=len(paths), unit="img", disable=not progress or not sys.stderr.isatty(), desc="scoring")
    try:
        for start in range(0, len(paths), batch_size):
            batch = range(start, min(start + batch_size, len(paths)))
            for record in run.batch([(paths[i], stems[i]) for i in batch]):
                ok = record["status"] == "ok"
                n_ok, n_failed = n_ok + ok, n_failed + (not ok)
                writer.write(record)
                bar.update(1)
            bar.set_postfix(failed=n_failed, refresh=False)
    finally:
        bar.close()
        writer.close()
    return ScoreSummary(n_ok=n_ok, n_failed=n_failed, results_path=results_path, out_dir=out_dir)


@attrs.define
class _Run:
    indicator: Indicator
    out_dir: Path
    prompts: PromptIndex | str | None
    save_maps: bool
    limit: int | None

    @property
    def name(self) -> str:
        return str(getattr(self.indicator, "name", None) or type(self.indicator).__name__)

    def _prompt(self, path: Path) -> str | None:
        return self.prompts.get(path) if isinstance(self.prompts, PromptIndex) else self.prompts

    def batch(self, files: list[tuple[Path, str]]) -> list[dict[str, Any]]:
        """Records for ``files`` (path, output stem), in order."""
        records: list[dict[str, Any]] = []
        ready: list[_Item] = []
        for i, (path, stem) in enumerate(files):
            prompt = self._prompt(path)
            rec: dict[str, Any] = {"file": str(path), "prompt": prompt or ""}
            records.append(rec)
            if self.indicator.needs_prompt and not prompt:
                how = f"no row for {path.name} in the prompts CSV" if self.prompts else "give --prompt"
                rec["error"] = f"indicator {self.name!r} needs a prompt ({how})"
                continue
            try:
                image = load_image(path, max_pixels=self.limit)
            except Exception as e:  # one unreadable file never stops the run
                rec["error"] = _error_message(e)
                continue
            rec.update(width=image.width, height=image.height)
            ready.append(_Item(i, path, stem, prompt, image))
        results = _score(self.indicator, ready) if ready else []
        for item, result in zip(ready, results, strict=True):
            rec = records[item.index]
            if isinstance(result, Exception):
                rec["error"] = _error_message(result)
                continue
            rec.update(status="ok", **result.to_json())
            rec["indicator"] = result.indicator or self.name
            if self.save_maps and item.image is not None:
                heatmap, npy = f"{item.stem}.heatmap.png", f"{item.stem}.map.npy"
                # compress_level 3: much faster than the default on large maps, a little bigger
                overlay_heatmap(item.image, result.map).save(self.out_dir / heatmap, compress_level=3)
                save_map_npy(self.out_dir / npy, result.map)
                rec.update(heatmap=heatmap, map=npy)
        return [_ordered(rec, rec.get("status") == "ok") for rec in records]


def _ordered(rec: dict[str, Any], ok: bool) -> dict[str, Any]:
    """One record with every key present, in a stable order (JSON) / column order (CSV)."""
    out: dict[str, Any] = {
        "file": rec["file"],
        "status": "ok" if ok else "error",
        "score": rec.get("score"),
        "width": rec.get("width"),
        "height": rec.get("height"),
        "indicator": rec.get("indicator"),
        "prompt": rec.get("prompt", ""),
        "heatmap": rec.get("heatmap"),
        "map": rec.get("map"),
        "error": None if ok else rec.get("error", "unknown error"),
    }
    if ok:
        out["details"] = rec.get("details", {})
    return out
