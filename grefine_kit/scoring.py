"""The batch scoring runner behind ``grefine score`` (outputs: docs/scoring.md).

The output folder is a run folder (``grefine_kit.runs``): each image's record is appended to
``reports.jsonl`` as its batch finishes, a rerun skips what is done, and ``results.csv`` or
``results.jsonl`` (one row per input file, in input order; ``grefine_kit.results``) is rebuilt
from the records when the run ends. A bad image (unreadable, too large, NaN in its map)
becomes an error row and the run goes on; when the indicator raises on a batch, that batch
is re-scored one image at a time so one bad image cannot sink the others. An indicator
raising a ``UserError`` that is not an ``ImageError`` (missing weights, bad options) stops
the run: that is a setup problem every image would hit.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from PIL import Image
from tqdm import tqdm

from grefine_kit.errors import ImageError, NonFiniteError, SetupError, UserError, error_message
from grefine_kit.images import (
    FROM_ENV,
    MaxPixels,
    load_image,
    overlay_heatmap,
    resolve_max_pixels,
)
from grefine_kit.indicators.base import Indicator
from grefine_kit.results import (
    HEAD_COLUMNS,
    RESULTS_NAMES,
    TAIL_COLUMNS,
    Format,
    flatten_details,
    write_results,
)
from grefine_kit.runs import atomic
from grefine_kit.runs.failures import FailureSummary
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.fingerprint import config_hash, indicator_config, item_fingerprint
from grefine_kit.runs.folder import RunFolder
from grefine_kit.runs.items import Item, display_path, make_items, safe_text
from grefine_kit.runs.layout import OutputNames, output_stems
from grefine_kit.runs.numeric import check_quality_map
from grefine_kit.types import QualityMap

__all__ = [
    "HEAD_COLUMNS",
    "TAIL_COLUMNS",
    "ScoreSummary",
    "flatten_details",
    "output_stems",
    "score_files",
    "score_items",
    "write_results",
]


@attrs.frozen
class ScoreSummary:
    """What a scoring run did. ``exit_code``: 0 all images ok, 1 some failed."""

    n_ok: int
    n_failed: int
    results_path: Path
    out_dir: Path
    n_skipped: int = 0
    n_redone: int = 0
    redo_reasons: Mapping[str, int] = attrs.field(factory=dict)
    failures: FailureSummary = attrs.field(factory=FailureSummary, eq=False)

    @property
    def n_total(self) -> int:
        return self.n_ok + self.n_failed + self.n_skipped

    @property
    def exit_code(self) -> int:
        return 1 if self.n_failed else 0


# --- the runner ------------------------------------------------------------------------


@attrs.frozen
class _Ready:
    index: int
    item: Item
    stem: str
    image: Image.Image


def _check_result(qm: Any, image: Image.Image) -> QualityMap:
    if not isinstance(qm, QualityMap):
        raise TypeError(f"the indicator returned a {type(qm).__name__}, not a QualityMap")
    if qm.size != image.size:
        w, h = image.size
        raise ValueError(f"the indicator returned a {qm.size[0]}x{qm.size[1]} map for a {w}x{h} image")
    check_quality_map(qm, "the indicator's")
    return qm


def _score(indicator: Indicator, items: list[_Ready]) -> list[QualityMap | Exception]:
    """Score ``items`` in one call; on failure, one image at a time."""
    images = [it.image for it in items]
    prompts = [it.item.prompt or "" for it in items] if indicator.needs_prompt else None
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
        except (TypeError, ValueError, NonFiniteError) as e:
            out.append(e)
    return out


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
    resume: bool = True,
    config: Mapping[str, Any] | None = None,
) -> ScoreSummary:
    """Score ``paths`` with ``indicator`` and write results into ``out_dir`` (a run folder).

    ``prompts``: one prompt for every image, or a mapping read by ``read_prompts_csv``
    (matched with :class:`~grefine_kit.inputs.PromptIndex`). ``fmt``: ``"csv"`` ->
    ``results.csv``, ``"json"`` -> ``results.jsonl``. ``save_maps``: write
    ``<stem>.heatmap.png`` (overlay, same size as the image) and ``<stem>.map.npy``
    (float32 (H, W), 1 = good) per scored image. ``max_pixels``: as in ``load_image``.
    ``resume``: skip items whose record in ``reports.jsonl`` is ``ok`` with a matching
    fingerprint (the indicator's name and options, plus ``config``: e.g. the recipe's hash).
    Raises UserError for bad arguments and setup problems; per-image problems become error rows.
    """
    if fmt not in RESULTS_NAMES:
        raise UserError(f"unknown format {fmt!r}; choose csv or json")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch size must be a positive integer; got {batch_size!r}")
    if not paths:
        raise UserError("no images to score")
    if getattr(indicator, "needs_prompt", False) and prompts is None:
        # every image would fail the same way: one setup error instead of N error rows
        name = getattr(indicator, "name", None) or type(indicator).__name__
        raise SetupError(f"indicator {name!r} needs a prompt: give --prompt TEXT or --prompts CSV")
    return score_items(
        make_items(list(paths), prompts),
        indicator,
        out_dir,
        fmt=fmt,
        batch_size=batch_size,
        progress=progress,
        save_maps=save_maps,
        max_pixels=max_pixels,
        resume=resume,
        config=config,
        prompts_given=prompts is not None and not isinstance(prompts, str),
    )


def score_items(
    items: Sequence[Item],
    indicator: Indicator,
    out_dir: Path,
    *,
    fmt: Format = "csv",
    batch_size: int = 8,
    progress: bool = True,
    save_maps: bool = True,
    max_pixels: MaxPixels = FROM_ENV,
    resume: bool = True,
    config: Mapping[str, Any] | None = None,
    prompts_given: bool = False,
) -> ScoreSummary:
    """:func:`score_files` on ready-made items (ids, prompts)."""
    # a bad GREFINE_MAX_PIXELS fails once, here, not once per image
    limit = resolve_max_pixels(max_pixels)
    run = _Run(indicator=indicator, save_maps=save_maps, limit=limit, prompts_given=prompts_given)
    cfg = config_hash({**indicator_config(indicator), **(dict(config) if config is not None else {})})
    stems = output_stems([it.image for it in items])
    n_ok = n_failed = n_skipped = 0
    redone: Counter[str] = Counter()
    failures = FailureSummary()
    bar = tqdm(total=len(items), unit="img", disable=not progress or not sys.stderr.isatty(), desc="scoring")
    with RunFolder.open(out_dir, inputs=[it.image for it in items]) as folder:
        run.out_dir = folder.path
        results_path = folder.path / RESULTS_NAMES[fmt]
        try:
            todo: list[tuple[Item, str, dict[str, Any] | None, str | None]] = []
            for item, stem in zip(items, stems, strict=True):
                fp, why, done = _resume_check(folder, item, cfg, save_maps, resume)
                if done:
                    n_skipped += 1
                    bar.update(1)
                    continue
                todo.append((item, stem, fp, why))
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                fault_point("before-item")
                for record in run.batch(chunk):
                    fault_point("between-record-and-log")
                    folder.append(record)
                    ok = record["status"] == "ok"
                    n_ok, n_failed = n_ok + ok, n_failed + (not ok)
                    if not ok:
                        failures.add(record)
                    if record.get("redone"):
                        redone[str(record["redone"])] += 1
                    bar.update(1)
                bar.set_postfix(failed=n_failed, refresh=False)
        finally:
            bar.close()
            # the results file is a view of the log, rebuilt whole (never truncated up front)
            ordered = [folder.records[it.id] for it in items if it.id in folder.records]
            write_results(results_path, fmt, ordered)
            fault_point("after-results")
    return ScoreSummary(
        n_ok=n_ok,
        n_failed=n_failed,
        results_path=results_path,
        out_dir=folder.path,
        n_skipped=n_skipped,
        n_redone=sum(redone.values()),
        redo_reasons=dict(redone),
        failures=failures,
    )


def _resume_check(
    folder: RunFolder, item: Item, cfg: str, save_maps: bool, resume: bool
) -> tuple[dict[str, Any] | None, str | None, bool]:
    """``(fingerprint or None when the file cannot be read, why redone, done)``."""
    old = folder.records.get(item.id)
    try:
        fp = item_fingerprint(
            item.image,
            prompt=item.prompt,
            seed=item.seed,
            config=cfg,
            options={"maps": bool(save_maps)},
            known=old.get("fingerprint") if isinstance(old, dict) else None,
        )
    except OSError as exc:  # unreadable or not a regular file: an error row, never opened again
        return None, f"cannot read: {exc.strerror or exc}", False
    done, why = folder.resume_state(item.id, fp, [])
    if resume and done:
        return fp, None, True
    if why is None and not resume and old is not None:
        why = "--no-resume"
    return fp, why, False


@attrs.define
class _Run:
    indicator: Indicator
    save_maps: bool
    limit: int | None
    prompts_given: bool = False
    out_dir: Path = Path(".")

    @property
    def name(self) -> str:
        return str(getattr(self.indicator, "name", None) or type(self.indicator).__name__)

    def batch(self, todo: list[tuple[Item, str, dict[str, Any] | None, str | None]]) -> list[dict[str, Any]]:
        """Log records for ``todo`` (item, output stem, fingerprint, why redone), in order."""
        records: list[dict[str, Any]] = []
        ready: list[_Ready] = []
        for i, (item, stem, fp, why) in enumerate(todo):
            prompt = item.prompt
            rec: dict[str, Any] = {"file": display_path(item.image), "prompt": safe_text(prompt or "")}
            records.append(rec)
            if fp is None:
                rec["error"] = f"{display_path(item.image)}: {why}"
                continue
            if self.indicator.needs_prompt and not prompt:
                how = (
                    f"no row for {display_path(item.image.name)} in the prompts CSV"
                    if self.prompts_given
                    else "give --prompt"
                )
                rec["error"] = f"indicator {self.name!r} needs a prompt ({how})"
                continue
            try:
                image = load_image(item.image, max_pixels=self.limit)
            except Exception as e:  # one unreadable file never stops the run
                rec["error"] = safe_text(error_message(e))
                continue
            rec.update(width=image.width, height=image.height)
            ready.append(_Ready(i, item, stem, image))
        results = _score(self.indicator, ready) if ready else []
        for ready_item, result in zip(ready, results, strict=True):
            rec = records[ready_item.index]
            if isinstance(result, Exception):
                rec["error"] = safe_text(error_message(result))
                continue
            rec.update(status="ok", **result.to_json())
            rec["indicator"] = result.indicator or self.name
            if self.save_maps:
                names = OutputNames(ready_item.stem)
                heatmap, npy = names.heatmap(), names.raw_map()
                # compress_level 3: much faster than the default on large maps, a little bigger
                overlay = overlay_heatmap(ready_item.image, result.map)
                atomic.write_png(self.out_dir / heatmap, overlay, compress_level=3)
                atomic.write_npy(self.out_dir / npy, np.asarray(result.map, dtype=np.float32))
                rec.update(heatmap=heatmap, map=npy)
        fault_point("after-output-write")
        out = []
        for (item, _, fp, why), rec in zip(todo, records, strict=True):
            ok = rec.get("status") == "ok"
            logged: dict[str, Any] = {"id": item.id, **_ordered(rec, ok)}
            if fp is not None:
                logged["fingerprint"] = fp
            if ok and rec.get("heatmap"):
                logged["outputs"] = [rec["heatmap"], rec["map"]]
            if why and fp is not None:
                logged["redone"] = why
            out.append(logged)
        return out


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
