"""The refine unit of work: :class:`RefineWork` (what to build) and :class:`RefineWorker`
(the built Refiner doing task batches), used by every engine (``grefine_kit.engines``).

A worker refines a batch of tasks with one ``Refiner.refine_many`` call, so the indicators
score the whole batch together; per image it writes the refined PNG (and, with maps, the mask,
heatmaps and raw maps) and ``<stem>.report.json`` into the run folder, each by temp file +
rename, and hands the image's record on as soon as that image is done (``process_each``; the
runner appends it to ``reports.jsonl`` and shows progress per image). Outputs do not
depend on the batching: seeds come from (seed, item id) and the indicators are batch-invariant.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.engines.base import Task
from grefine_kit.errors import ImageError, ItemError, UserError, error_message
from grefine_kit.images.heatmaps import overlay_heatmap
from grefine_kit.images.loading import load_image
from grefine_kit.parts.roles import indicator_role
from grefine_kit.runs import atomic
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.items import display_path
from grefine_kit.runs.layout import OutputNames
from grefine_kit.runs.numeric import check_finite, check_quality_map

__all__ = ["RefineWork", "RefineWorker", "base_record", "is_setup_error"]


def is_setup_error(exc: BaseException) -> bool:
    """A ``UserError`` other than an item's own (a bad image, region prompts that do not fit
    its regions): missing weights, a broken checkpoint, a full disk: every item would fail the
    same way, so the run stops (finished items keep their outputs and records) instead of
    recording it per image."""
    return isinstance(exc, UserError) and not isinstance(exc, ItemError)


def base_record(task: Task) -> dict[str, Any]:
    """The record fields every outcome of ``task`` shares (id first: a cut log line keeps it)."""
    names = OutputNames(task.stem)
    record: dict[str, Any] = {
        "id": task.item.id,
        "file": display_path(task.item.image),
        "output": names.image,
        "prompt": task.item.prompt,
    }
    if task.item.region_prompts is not None:
        record["region_prompts"] = task.item.region_prompts
    if task.redone:
        record["redone"] = task.redone
    if task.fingerprint is not None:
        record["fingerprint"] = task.fingerprint
    return record


@attrs.define
class RefineWork:
    """Refine into ``out_dir`` with ``source``: a ``Recipe`` (portable: each worker builds its
    own Refiner from it, in any process) or a built ``Refiner`` (in-process engines only)."""

    source: Any
    out_dir: Path
    save_maps: bool = False

    @property
    def kind(self) -> str:
        return "refine"

    @property
    def portable(self) -> bool:
        from grefine_kit.recipes.recipe import Recipe

        return isinstance(self.source, Recipe)

    def open(self) -> RefineWorker:
        refiner = self.source.build() if self.portable else self.source
        return RefineWorker(refiner, Path(self.out_dir), self.save_maps)


@attrs.define
class RefineWorker:
    """A built Refiner doing :class:`~grefine_kit.engines.base.Task` batches (see module doc)."""

    refiner: Any
    out_dir: Path
    save_maps: bool = False

    def process(self, tasks: Sequence[Task]) -> list[dict[str, Any]]:
        """:meth:`process_each`'s records, in task order."""
        order = {t.item.id: i for i, t in enumerate(tasks)}
        return sorted(self.process_each(tasks), key=lambda r: order[r["id"]])

    def process_each(self, tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        """One record per task, in task order, each yielded as soon as that image and every
        one before it are done (outputs and ``<stem>.report.json`` written): the batch hands
        its refined images out one by one. ``seconds_total``: the image's own load, refine
        (with its share of the batched indicators) and write time."""
        records = [base_record(t) for t in tasks]
        seconds = [0.0] * len(tasks)
        final = [False] * len(tasks)
        ready: list[tuple[int, Any]] = []
        for i, task in enumerate(tasks):
            fault_point("before-item")
            began = time.perf_counter()
            final[i] = self._load(task, records[i], ready, i)
            seconds[i] = time.perf_counter() - began
        done = 0

        def flush() -> Iterator[dict[str, Any]]:
            nonlocal done
            while done < len(tasks) and final[done]:
                yield self._close(tasks[done], records[done], seconds[done])
                done += 1

        yield from flush()
        if ready:
            for i in self._refine(tasks, ready, records, seconds):
                final[i] = True
                yield from flush()

    def _load(self, task: Task, record: dict[str, Any], ready: list[tuple[int, Any]], i: int) -> bool:
        """Load ``task``'s image into ``ready``; False when it is ready, True when ``record``
        now says why it cannot be refined."""
        if task.fingerprint is None:
            record.update(status="error", error=f"{record['file']}: {task.problem or 'cannot read'}")
            return True
        if not isinstance(task.item.prompt, str):
            record.update(
                status="error",
                error=f"{record['file']}: no prompt for this image (give --prompt, or a prompt in the "
                "prompts CSV or manifest)",
            )
            return True
        try:
            image = load_image(task.item.image)
            region = _item_region(task, image) if self._needs_region else None
            ready.append((i, (image, region)))
        except Exception as exc:  # one unreadable image (or region mask) must not sink the batch
            if is_setup_error(exc):
                raise
            record.update(status="error", error=error_message(exc))
            return True
        return False

    @property
    def _needs_region(self) -> bool:
        """Whether the refiner reads the items' region masks (a recipe without ``region-map``
        ignores a manifest's ``region`` column, as the benchmark's metrics read it on their own)."""
        from grefine_kit.refiner.refiner import Refiner

        return isinstance(self.refiner, Refiner) and self.refiner.needs_region

    def _close(self, task: Task, record: dict[str, Any], seconds: float) -> dict[str, Any]:
        """``record`` with its time, once its per-image report is written (a name the disk
        refuses is this item's error only)."""
        record["seconds_total"] = round(seconds, 3)
        try:
            atomic.write_json(self.out_dir / OutputNames(task.stem).report, record)
        except ImageError as exc:
            record.update(status="error", error=error_message(exc))
            record.pop("outputs", None)
        return record

    def _refine(
        self,
        tasks: Sequence[Task],
        ready: list[tuple[int, Any]],
        records: list[dict[str, Any]],
        seconds: list[float],
    ) -> Iterator[int]:
        """Refine the loaded images as one batch, yielding each task index as its image is
        done; if the batch raises, redo the images it did not finish one at a time, so that
        one bad image becomes one error record."""
        if not hasattr(self.refiner, "refine_many"):  # a duck-typed refiner: one image a call
            yield from self._one_by_one(tasks, ready, records, seconds)
            return
        args = [self._args(tasks[i], loaded) for i, loaded in ready]
        done = 0
        began = time.perf_counter()
        try:
            for result in self.refiner.refine_many(args, batch_size=len(args)):
                i, (image, _region) = ready[done]
                measured = time.perf_counter() - began
                began = time.perf_counter()
                self._finish(tasks[i], image, result, records[i])
                # the refiner's own figure shares the batched indicators out fairly
                seconds[i] += _refine_seconds(result, measured) + time.perf_counter() - began
                done += 1
                yield i
                began = time.perf_counter()
        except Exception as exc:
            if is_setup_error(exc):
                raise
            if len(args) - done == 1:  # the image that raised is known: no need to redo it
                records[ready[done][0]].update(status="error", error=error_message(exc))
                yield ready[done][0]
                return
            yield from self._one_by_one(tasks, ready[done:], records, seconds)

    def _one_by_one(
        self,
        tasks: Sequence[Task],
        ready: list[tuple[int, Any]],
        records: list[dict[str, Any]],
        seconds: list[float],
    ) -> Iterator[int]:
        for i, loaded in ready:
            began = time.perf_counter()
            try:
                result = self._refine_one(tasks[i], loaded)
                self._finish(tasks[i], loaded[0], result, records[i])
            except Exception as exc:
                if is_setup_error(exc):
                    raise
                records[i].update(status="error", error=error_message(exc))
            seconds[i] += time.perf_counter() - began
            yield i

    def _refine_one(self, task: Task, loaded: tuple[Any, Any]) -> Any:
        if hasattr(self.refiner, "refine_many"):
            return next(self.refiner.refine_many([self._args(task, loaded)], batch_size=1))
        extra: dict[str, Any] = {"seed": task.item.seed} if task.item.seed is not None else {}
        if task.item.region_prompts is not None:
            extra["region_prompts"] = task.item.region_prompts
        if loaded[1] is not None:
            extra["region"] = loaded[1]
        return self.refiner.refine(loaded[0], task.item.prompt, image_id=task.item.id, **extra)

    def _args(self, task: Task, loaded: tuple[Any, Any]) -> tuple[Any, ...]:
        # an item's own seed replaces the recipe seed: derive_seed(item seed, item id); its own
        # region prompts replace the recipe's refiner.region_prompts; its region mask (a
        # manifest's region column) is for the region-map indicator
        image, region = loaded
        return (image, task.item.prompt, task.item.id, task.item.seed, task.item.region_prompts, region)

    def _finish(self, task: Task, image: Any, result: Any, record: dict[str, Any]) -> None:
        names = OutputNames(task.stem)
        try:
            for role, qmap in result.maps.items():
                check_quality_map(qmap, role)
            written = write_outputs(self.out_dir, names, result, image, self.save_maps)
        except Exception as exc:
            if is_setup_error(exc):
                raise
            record.update(status="error", error=error_message(exc))
            return
        record.update(status="ok", **dict(result.report))
        record["outputs"] = [names.image, names.report, *written]


def _item_region(task: Task, image: Any) -> Any:
    """The item's region mask (bool ``(H, W)``) when its manifest names one, else None."""
    path = getattr(task.item, "region", None)
    if path is None:
        return None
    from grefine_kit.indicators.region_map import read_region

    return read_region(path, image.size)


def _refine_seconds(result: Any, measured: float) -> float:
    """The refine time the result's report gives (batched indicators shared out), else ``measured``."""
    report = getattr(result, "report", None)
    timings = report.get("timings") if isinstance(report, dict) else None
    value = timings.get("refine") if isinstance(timings, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else measured


def write_outputs(out: Path, names: OutputNames, result: Any, image: Any, save_maps: bool) -> list[str]:
    """Write the refined image (and maps) atomically; returns the map files written."""
    import numpy as np

    check_finite(np.asarray(result.image), "refined image")
    atomic.write_png(out / names.image, result.image)
    written: list[str] = []
    for role, previews in getattr(result, "previews", {}).items():
        for step, preview in previews:
            atomic.write_png(out / names.preview(role, step), preview, compress_level=3)
            written.append(names.preview(role, step))
    if save_maps:
        from PIL import Image

        if result.mask is not None:
            mask = Image.fromarray((result.mask.binary * 255).astype("uint8"), "L")
            atomic.write_png(out / names.mask, mask)
            written.append(names.mask)
        for role_name, qmap in result.maps.items():  # run order: built-in roles, then extra ones
            slot = indicator_role(role_name)
            if slot.tag:
                heatmap = overlay_heatmap(image, qmap.map, legend=True)
                atomic.write_png(out / names.heatmap(slot.tag), heatmap, compress_level=3)
                atomic.write_npy(out / names.raw_map(slot.tag), np.asarray(qmap.map, dtype=np.float32))
                written += [names.heatmap(slot.tag), names.raw_map(slot.tag)]
    fault_point("after-output-write")
    return written
