"""The refine unit of work: :class:`RefineWork` (what to build) and :class:`RefineWorker`
(the built Refiner doing task batches), used by every engine (``grefine_kit.engines``).

A worker refines a batch of tasks with one ``Refiner.refine_many`` call, so the indicators
score the whole batch together; per image it writes the refined PNG (and, with maps, the mask,
heatmaps and raw maps) and ``<stem>.report.json`` into the run folder, each by temp file +
rename, and returns the records for the runner to append to ``reports.jsonl``. Outputs do not
depend on the batching: seeds come from (seed, item id) and the indicators are batch-invariant.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.engines.base import Task
from grefine_kit.errors import ImageError, UserError, error_message
from grefine_kit.images import load_image, overlay_heatmap
from grefine_kit.roles import ROLES
from grefine_kit.runs import atomic
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.items import display_path
from grefine_kit.runs.layout import OutputNames
from grefine_kit.runs.numeric import check_finite, check_quality_map

__all__ = ["RefineWork", "RefineWorker", "base_record", "is_setup_error"]


def is_setup_error(exc: BaseException) -> bool:
    """A ``UserError`` other than a bad image (missing weights, a broken checkpoint, a full
    disk): every item would fail the same way, so the run stops (finished items keep their
    outputs and records) instead of recording it per image."""
    return isinstance(exc, UserError) and not isinstance(exc, ImageError)


def base_record(task: Task) -> dict[str, Any]:
    """The record fields every outcome of ``task`` shares (id first: a cut log line keeps it)."""
    names = OutputNames(task.stem)
    record: dict[str, Any] = {
        "id": task.item.id,
        "file": display_path(task.item.image),
        "output": names.image,
        "prompt": task.item.prompt,
    }
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
        from grefine_kit.recipe import Recipe

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
        started = time.perf_counter()
        records = [base_record(t) for t in tasks]
        ready: list[tuple[int, Any]] = []
        for i, task in enumerate(tasks):
            fault_point("before-item")
            record = records[i]
            if task.fingerprint is None:
                record.update(status="error", error=f"{record['file']}: {task.problem or 'cannot read'}")
                continue
            if not isinstance(task.item.prompt, str):
                record.update(
                    status="error",
                    error=f"{record['file']}: no prompt for this image (give --prompt, or a prompt in the "
                    "prompts CSV or manifest)",
                )
                continue
            try:
                ready.append((i, load_image(task.item.image)))
            except Exception as exc:  # one unreadable image must not sink the batch
                if is_setup_error(exc):
                    raise
                record.update(status="error", error=error_message(exc))
        if ready:
            self._refine(tasks, ready, records)
        share = (time.perf_counter() - started) / max(1, len(tasks))
        for task, record in zip(tasks, records, strict=True):
            # the batch's wall time shared out: the indicators ran for the batch as a whole
            record["seconds_total"] = round(share, 3)
            atomic.write_json(self.out_dir / OutputNames(task.stem).report, record)
        return records

    def _refine(
        self, tasks: Sequence[Task], ready: list[tuple[int, Any]], records: list[dict[str, Any]]
    ) -> None:
        """Refine the loaded images as one batch; if the batch raises, redo the images it did
        not finish one at a time, so that one bad image becomes one error record."""
        if not hasattr(self.refiner, "refine_many"):  # a duck-typed refiner: one image a call
            self._one_by_one(tasks, ready, records)
            return
        args = [self._args(tasks[i], image) for i, image in ready]
        done = 0
        try:
            for result in self.refiner.refine_many(args, batch_size=len(args)):
                i, image = ready[done]
                self._finish(tasks[i], image, result, records[i])
                done += 1
        except Exception as exc:
            if is_setup_error(exc):
                raise
            if len(args) - done == 1:  # the image that raised is known: no need to redo it
                records[ready[done][0]].update(status="error", error=error_message(exc))
                return
            self._one_by_one(tasks, ready[done:], records)

    def _one_by_one(
        self, tasks: Sequence[Task], ready: list[tuple[int, Any]], records: list[dict[str, Any]]
    ) -> None:
        for i, image in ready:
            try:
                result = self._refine_one(tasks[i], image)
                self._finish(tasks[i], image, result, records[i])
            except Exception as exc:
                if is_setup_error(exc):
                    raise
                records[i].update(status="error", error=error_message(exc))

    def _refine_one(self, task: Task, image: Any) -> Any:
        if hasattr(self.refiner, "refine_many"):
            return next(self.refiner.refine_many([self._args(task, image)], batch_size=1))
        extra = {"seed": task.item.seed} if task.item.seed is not None else {}
        return self.refiner.refine(image, task.item.prompt, image_id=task.item.id, **extra)

    def _args(self, task: Task, image: Any) -> tuple[Any, ...]:
        # an item's own seed replaces the recipe seed: derive_seed(item seed, item id)
        return (image, task.item.prompt, task.item.id, task.item.seed)

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
        for slot in ROLES:
            qmap = result.maps.get(slot.name)
            if qmap is not None and slot.tag:
                heatmap = overlay_heatmap(image, qmap.map, legend=True)
                atomic.write_png(out / names.heatmap(slot.tag), heatmap, compress_level=3)
                atomic.write_npy(out / names.raw_map(slot.tag), np.asarray(qmap.map, dtype=np.float32))
                written += [names.heatmap(slot.tag), names.raw_map(slot.tag)]
    fault_point("after-output-write")
    return written
