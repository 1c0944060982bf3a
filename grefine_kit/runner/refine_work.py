"""The refine unit of work: :class:`RefineWork` (the recipe, and the Refiner built from it)
and :class:`RefineWorker` (the Refiner doing task batches), used by every engine
(``grefine_kit.engines``).

A worker refines a batch of tasks with one ``refine_many`` call, so the indicators score the
whole batch together; per image it writes the refined PNG (and, with maps, the mask, heatmaps
and raw maps) and ``<stem>.report.json`` into the run folder, each by temp file + rename, and
hands the image's record on as soon as that image is done (``process_each``; the runner
appends it to ``reports.jsonl`` and shows progress per image). Outputs do not depend on the
batching: seeds come from (seed, item id) and the indicators are batch-invariant.

What the runner needs of a refiner is :class:`BatchRefiner` (``grefine_kit.refiner.refiner.Refiner``
is one); :class:`SingleImageRefiner` makes one out of a class with a one-image ``refine``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from grefine_kit.engines.base import SpecWork, Task, TaskWorker
from grefine_kit.errors import ImageError, ItemError, UserError, error_message
from grefine_kit.images.heatmaps import overlay_heatmap
from grefine_kit.images.loading import load_image
from grefine_kit.parts.roles import STAGE_KIND, Role, indicator_role
from grefine_kit.runs import atomic
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.items import display_path
from grefine_kit.runs.layout import OutputNames
from grefine_kit.runs.numeric import check_finite, check_quality_map

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image

    from grefine_kit.refiner.refiner import RefineResult

__all__ = [
    "BatchRefiner",
    "RefineWork",
    "RefineWorker",
    "SingleImageRefiner",
    "base_record",
    "is_setup_error",
    "parts_by_table",
    "stage_parts",
]

#: what ``refine_many`` takes per item: (image, prompt, image id, seed, region prompts, region mask)
RefineArgs = tuple[Any, ...]


class BatchRefiner(Protocol):
    """What the runner uses of a refiner (``grefine_kit.refiner.refiner.Refiner`` has it all).

    ``seed``: the base seed of items without their own; ``recipe_hash``: what identifies the
    setup in every item's fingerprint ("" for none); ``batch_size``: images per batch by
    default; ``needs_region``: whether it reads the items' region masks (a manifest's
    ``region`` column); ``needs_prompt``: whether it reads the items' prompts (when not, an item
    without one is refined with ""); ``roles``: the roles it has parts in (built-in and a recipe's extra
    ones); ``part(role)``: the part in a role or None; ``refine_many``: lazily one
    ``RefineResult`` per item, in order (items: :data:`RefineArgs`)."""

    @property
    def seed(self) -> int | None: ...

    @property
    def recipe_hash(self) -> str: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def needs_region(self) -> bool: ...

    @property
    def needs_prompt(self) -> bool: ...

    @property
    def roles(self) -> tuple[Role, ...]: ...

    def part(self, name: str) -> object: ...

    def refine_many(
        self, items: Iterable[RefineArgs], *, batch_size: int | None = None
    ) -> Iterator[RefineResult]: ...


class SingleImageRefiner:
    """A base that makes a :class:`BatchRefiner` of a class refining one image a call: subclass
    it and define ``refine(image, prompt, image_id="image", **extra)`` (``extra``: ``seed``,
    ``region_prompts``, ``region``, passed only when the item has them). One image a batch by
    default; no parts, no region masks, seed 0 and no recipe hash unless set."""

    seed: int | None = 0
    recipe_hash: str = ""
    batch_size: int = 1
    needs_region: bool = False
    needs_prompt: bool = False
    roles: tuple[Role, ...] = ()

    def part(self, name: str) -> object:
        return None

    def refine(self, image: Image.Image, prompt: str, image_id: str = "image", **extra: Any) -> RefineResult:
        raise NotImplementedError

    def refine_many(
        self, items: Iterable[RefineArgs], *, batch_size: int | None = None
    ) -> Iterator[RefineResult]:
        for image, prompt, image_id, seed, region_prompts, region in items:
            extra = {"seed": seed, "region_prompts": region_prompts, "region": region}
            yield self.refine(
                image, prompt, image_id=image_id, **{k: v for k, v in extra.items() if v is not None}
            )


def parts_by_table(refiner: BatchRefiner) -> dict[str, object]:
    """The refiner's built parts keyed by their recipe table (``indicators.perceptual``, ...),
    as preflight (``grefine_kit.readiness.preflight.ensure_ready``) names them."""
    return {slot.table: part for slot in refiner.roles if (part := refiner.part(slot.name)) is not None}


def stage_parts(refiner: BatchRefiner) -> list[object]:
    """The refiner's stage parts, a recipe's extra stages included (for the files they read:
    ``stage_file_digests``)."""
    return [
        stage for r in refiner.roles if r.kind == STAGE_KIND and (stage := refiner.part(r.name)) is not None
    ]


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
class RefineWork(SpecWork[BatchRefiner]):
    """Refine into ``out_dir`` with ``built``, the refiner built from ``spec``, the recipe
    (:class:`~grefine_kit.engines.base.SpecWork`: in-process engines use the built refiner,
    the one the runner's preflight and fingerprint used; a pickled copy rebuilds it from the
    recipe). ``spec`` None (a built refiner alone): in-process engines only."""

    save_maps: bool = False

    @property
    def kind(self) -> str:
        return "refine"

    def worker(self, built: BatchRefiner) -> RefineWorker:
        return RefineWorker(built, Path(self.out_dir), self.save_maps)


@attrs.frozen
class _Loaded:
    """A task's image, loaded, and its region mask (None: the refiner reads none)."""

    index: int
    image: Image.Image
    region: Any


@attrs.frozen
class _Batch:
    """A batch's tasks with their records and seconds so far (index-aligned)."""

    tasks: Sequence[Task]
    records: list[dict[str, Any]]
    seconds: list[float]


@attrs.define
class RefineWorker(TaskWorker):
    """A built refiner doing :class:`~grefine_kit.engines.base.Task` batches (see module doc)."""

    refiner: BatchRefiner
    out_dir: Path
    save_maps: bool = False

    def process_each(self, tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        """One record per task, in task order, each yielded as soon as that image and every
        one before it are done (outputs and ``<stem>.report.json`` written): the batch hands
        its refined images out one by one. ``seconds_total``: the image's own load, refine
        (with its share of the batched indicators) and write time."""
        records = [base_record(t) for t in tasks]
        seconds = [0.0] * len(tasks)
        final = [False] * len(tasks)
        ready: list[_Loaded] = []
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
            for i in self._refine(_Batch(tasks, records, seconds), ready):
                final[i] = True
                yield from flush()

    def _load(self, task: Task, record: dict[str, Any], ready: list[_Loaded], i: int) -> bool:
        """Load ``task``'s image into ``ready``; False when it is ready, True when ``record``
        now says why it cannot be refined."""
        if task.fingerprint is None:
            record.update(status="error", error=f"{record['file']}: cannot read ({task.problem or '?'})")
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
            # a recipe without region-map ignores a manifest's region column (the benchmark's
            # metrics read it on their own)
            region = _item_region(task, image) if self.refiner.needs_region else None
            ready.append(_Loaded(i, image, region))
        except Exception as exc:  # one unreadable image (or region mask) must not sink the batch
            _item_failed(record, exc)
            return True
        return False

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

    def _refine(self, batch: _Batch, ready: list[_Loaded]) -> Iterator[int]:
        """Refine the loaded images as one batch, yielding each task index as its image is
        done; if the batch raises, redo the images it did not finish one at a time, so that
        one bad image becomes one error record."""
        args = [_args(batch.tasks[loaded.index], loaded) for loaded in ready]
        done = 0
        began = time.perf_counter()
        try:
            for result in self.refiner.refine_many(args, batch_size=len(args)):
                i, image = ready[done].index, ready[done].image
                measured = time.perf_counter() - began
                began = time.perf_counter()
                self._finish(batch.tasks[i], image, result, batch.records[i])
                # the refiner's own figure shares the batched indicators out fairly
                batch.seconds[i] += _refine_seconds(result, measured) + time.perf_counter() - began
                done += 1
                yield i
                began = time.perf_counter()
        except Exception as exc:
            if is_setup_error(exc):
                raise
            if len(args) - done == 1:  # the image that raised is known: no need to redo it
                _item_failed(batch.records[ready[done].index], exc)
                yield ready[done].index
                return
            yield from self._one_by_one(batch, ready[done:])

    def _one_by_one(self, batch: _Batch, ready: list[_Loaded]) -> Iterator[int]:
        for loaded in ready:
            i = loaded.index
            began = time.perf_counter()
            try:
                result = next(self.refiner.refine_many([_args(batch.tasks[i], loaded)], batch_size=1))
                self._finish(batch.tasks[i], loaded.image, result, batch.records[i])
            except Exception as exc:
                _item_failed(batch.records[i], exc)
            batch.seconds[i] += time.perf_counter() - began
            yield i

    def _finish(self, task: Task, image: Image.Image, result: RefineResult, record: dict[str, Any]) -> None:
        names = OutputNames(task.stem)
        try:
            for role, qmap in result.maps.items():
                check_quality_map(qmap, role)
            written = write_outputs(self.out_dir, names, result, image, self.save_maps)
        except Exception as exc:
            _item_failed(record, exc)
            return
        record.update(status="ok", **dict(result.report))
        record["outputs"] = [names.image, names.report, *written]


def _item_failed(record: dict[str, Any], exc: Exception) -> None:
    """Make ``record`` the item's error record; a setup error (:func:`is_setup_error`) is
    raised instead: it stops the run."""
    if is_setup_error(exc):
        raise exc
    record.update(status="error", error=error_message(exc))


def _args(task: Task, loaded: _Loaded) -> RefineArgs:
    # an item's own seed replaces the recipe seed: derive_seed(item seed, item id); its own
    # region prompts replace the recipe's refiner.region_prompts; its region mask (a
    # manifest's region column) is for the region-map indicator
    item = task.item
    return (loaded.image, item.prompt, item.id, item.seed, item.region_prompts, loaded.region)


def _item_region(task: Task, image: Image.Image) -> NDArray[np.bool_] | None:
    """The item's region mask (bool ``(H, W)`` array) when its manifest names one, else None."""
    if task.item.region is None:
        return None
    from grefine_kit.indicators.region_map import read_region

    return read_region(task.item.region, image.size)


def _refine_seconds(result: RefineResult, measured: float) -> float:
    """The refine time the result's report gives (batched indicators shared out), else ``measured``."""
    timings = result.report.get("timings")
    value = timings.get("refine") if isinstance(timings, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else measured


def write_outputs(
    out: Path, names: OutputNames, result: RefineResult, image: Image.Image, save_maps: bool
) -> list[str]:
    """Write the refined image (and maps) atomically; returns the map files written."""
    import numpy as np

    check_finite(np.asarray(result.image), "refined image")
    atomic.write_png(out / names.image, result.image)
    written: list[str] = []
    for role, previews in result.previews.items():
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
