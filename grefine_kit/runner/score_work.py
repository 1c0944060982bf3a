"""The score unit of work: :class:`ScoreWork` (an :class:`IndicatorSpec` and the indicator
built from it) and :class:`ScoreWorker` (an indicator scoring task batches), used by every
engine (``grefine_kit.engines``).

A worker loads a batch's images, scores them in one ``indicator.score`` call (on failure, one
image at a time, so one bad image cannot sink the others), writes ``<stem>.heatmap.png`` and
``<stem>.map.npy`` atomically when maps are kept, and hands each task's record on as soon as
it is final (``process_each``) for the runner to append. An indicator raising a ``UserError``
that is not an ``ImageError`` (missing weights, bad options) is raised: every image would hit it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from PIL import Image

from grefine_kit.engines.base import SpecWork, Task, TaskWorker
from grefine_kit.errors import ImageError, NonFiniteError, UserError, error_message
from grefine_kit.images.heatmaps import overlay_heatmap
from grefine_kit.images.loading import load_image
from grefine_kit.indicators.base import Indicator
from grefine_kit.parts.base import as_part
from grefine_kit.runs import atomic
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.items import Item, display_path, safe_text
from grefine_kit.runs.layout import OutputNames
from grefine_kit.runs.numeric import check_quality_map
from grefine_kit.types import QualityMap

__all__ = ["IndicatorSpec", "ScoreWork", "ScoreWorker"]


@attrs.frozen
class IndicatorSpec:
    """What builds an indicator, picklable: registry ``name``, the ``recipe`` its options come
    from (a name or a ``.toml`` path, as on the command line; None: the indicator's defaults),
    ``device`` / ``dtype`` and other ``options`` (``--set`` values). :meth:`build` is
    ``grefine_kit.recipes.indicators.build_indicator`` with them."""

    name: str
    recipe: str | None = None
    device: str | None = None
    dtype: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def build(self) -> Indicator:
        """The indicator (cheap: no weights load until it scores)."""
        from grefine_kit.recipes.indicators import build_indicator

        built: Indicator = build_indicator(
            self.name, recipe=self.recipe, device=self.device, dtype=self.dtype, **self.options
        )
        return built


@attrs.define
class ScoreWork(SpecWork[Indicator]):
    """Score into ``out_dir`` with ``built``, the indicator built from ``spec`` (an
    :class:`IndicatorSpec`; :class:`~grefine_kit.engines.base.SpecWork`: in-process engines
    use the built indicator, a pickled copy builds its own). ``spec`` None (a built indicator
    alone): in-process engines only. ``limit``: the largest image in pixels (None: no limit);
    ``prompts_given``: prompts came from a CSV or manifest (for the error message)."""

    save_maps: bool = True
    limit: int | None = None
    prompts_given: bool = False

    @property
    def kind(self) -> str:
        return "score"

    def worker(self, built: Indicator) -> ScoreWorker:
        return ScoreWorker(built, self.save_maps, self.limit, self.prompts_given, Path(self.out_dir))


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


@attrs.define
class ScoreWorker(TaskWorker):
    """An indicator scoring :class:`~grefine_kit.engines.base.Task` batches (module doc)."""

    indicator: Indicator
    save_maps: bool
    limit: int | None
    prompts_given: bool = False
    out_dir: Path = Path(".")

    @property
    def name(self) -> str:
        return as_part(self.indicator).name

    def process_each(self, tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        """The same records in task order, each yielded as soon as it is final (a scored
        image once its maps are written; the batch is scored in one call)."""
        ready: list[_Ready] = []
        records = [self._load(task, ready, i) for i, task in enumerate(tasks)]
        done = 0
        for i, rec in enumerate(records):  # those before the first scorable image: final now
            if "error" not in rec:
                break
            yield _logged(tasks[i], rec)
            done = i + 1
        results = _score(self.indicator, ready) if ready else []
        for ready_item, result in zip(ready, results, strict=True):
            rec = records[ready_item.index]
            if isinstance(result, Exception):
                rec["error"] = safe_text(error_message(result))
            else:
                self._keep(ready_item, result, rec)
                fault_point("after-output-write")
            while done <= ready_item.index:
                yield _logged(tasks[done], records[done])
                done += 1
        for i in range(done, len(tasks)):
            yield _logged(tasks[i], records[i])

    def _load(self, task: Task, ready: list[_Ready], i: int) -> dict[str, Any]:
        """The task's record so far: with ``error`` when it cannot be scored, else its image
        is appended to ``ready``."""
        fault_point("before-item")
        item, prompt = task.item, task.item.prompt
        rec: dict[str, Any] = {"file": display_path(item.image), "prompt": safe_text(prompt or "")}
        if task.fingerprint is None:
            rec["error"] = f"{display_path(item.image)}: cannot read: {task.problem or '?'}"
            return rec
        if self.indicator.needs_prompt and not prompt:
            how = (
                f"no row for {display_path(item.image.name)} in the prompts CSV"
                if self.prompts_given
                else "give --prompt"
            )
            rec["error"] = f"indicator {self.name!r} needs a prompt ({how})"
            return rec
        try:
            image = load_image(item.image, max_pixels=self.limit)
        except Exception as e:  # one unreadable file never stops the run
            rec["error"] = safe_text(error_message(e))
            return rec
        rec.update(width=image.width, height=image.height)
        ready.append(_Ready(i, item, task.stem, image))
        return rec

    def _keep(self, ready_item: _Ready, result: QualityMap, rec: dict[str, Any]) -> None:
        """Fill ``rec`` from ``result``; with maps, write the heatmap and raw map first (a name
        the disk refuses is this item's ``error`` only)."""
        if self.save_maps:
            names = OutputNames(ready_item.stem)
            heatmap, npy = names.heatmap(), names.raw_map()
            try:
                # compress_level 3: much faster than the default on large maps, a little bigger
                overlay = overlay_heatmap(ready_item.image, result.map)
                atomic.write_png(self.out_dir / heatmap, overlay, compress_level=3)
                atomic.write_npy(self.out_dir / npy, np.asarray(result.map, dtype=np.float32))
            except ImageError as e:
                rec["error"] = safe_text(error_message(e))
                return
            rec.update(heatmap=heatmap, map=npy)
        rec.update(status="ok", **result.to_json())
        rec["indicator"] = result.indicator or self.name


def _logged(task: Task, rec: dict[str, Any]) -> dict[str, Any]:
    """The log record of ``task`` from its working record ``rec``."""
    item, fp, why = task.item, task.fingerprint, task.redone
    ok = rec.get("status") == "ok"
    logged: dict[str, Any] = {"id": item.id, **_ordered(rec, ok)}
    if fp is not None:
        logged["fingerprint"] = fp
    if ok and rec.get("heatmap"):
        logged["outputs"] = [rec["heatmap"], rec["map"]]
    if why and fp is not None:
        logged["redone"] = why
    return logged


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
