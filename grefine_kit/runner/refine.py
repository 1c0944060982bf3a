"""The batch runner behind ``grefine refine``: many images, resumable, never losing done work.

Per item with output stem ``<stem>`` (``grefine_kit.runs.layout``) the output folder gets:

- ``<stem>.png``: the refined image, at exactly the input's size;
- ``<stem>.report.json``: the per-image report (scores, mask area, strength, steps run per
  stage, seed, timings, recipe name and hash, package versions, the item's fingerprint);
- with ``maps``: ``<stem>.mask.png`` (white = repainted), ``<stem>.pq.heatmap.png`` /
  ``<stem>.aq.heatmap.png`` overlays and ``<stem>.pq.map.npy`` / ``<stem>.aq.map.npy`` raw maps;

and ``reports.jsonl`` gets one record per item, errors included, appended atomically as each
item finishes. The folder is a :class:`~grefine_kit.runs.folder.RunFolder`: locked, never an
input folder, every file written by temp + rename. With ``resume`` (the default) an item is
skipped only when its last record says ``ok``, its fingerprint (input file, prompt, seed,
recipe, output options) matches and its outputs exist; anything else is redone and the new
record's ``redone`` says why.

The runner plans (resume, ``shard``), an engine (``grefine_kit.engines``; ``local`` by
default) carries the tasks out in batches through :class:`~grefine_kit.runner.refine_work.RefineWorker`
s, and the runner appends each record as it comes back (per image with the local engine) and
reports it to a :class:`~grefine_kit.progress.RunProgress`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.engines.base import Engine, Task
from grefine_kit.errors import UserError
from grefine_kit.progress import RunProgress
from grefine_kit.runner.refine_work import RefineWork
from grefine_kit.runs.failures import FailureSummary
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.fingerprint import config_hash, item_fingerprint
from grefine_kit.runs.folder import RunFolder
from grefine_kit.runs.items import Item, make_items
from grefine_kit.runs.layout import OutputNames, output_stems
from grefine_kit.runs.shards import Shard

__all__ = ["BatchSummary", "make_items", "plan_tasks", "refine_files", "refine_items"]


@attrs.frozen
class BatchSummary:
    """What a refine run did. ``exit_code``: 0 when no image failed, else 1.

    ``n_redone``: items redone although a record existed (``redo_reasons``: why, counted);
    ``failures``: the failed records grouped by reason; ``n_other_shards``: items left to
    other shards (``--shard``)."""

    n_ok: int
    n_failed: int
    n_skipped: int
    out_dir: Path
    reports_path: Path
    n_redone: int = 0
    redo_reasons: Mapping[str, int] = attrs.field(factory=dict)
    failures: FailureSummary = attrs.field(factory=FailureSummary, eq=False)
    n_other_shards: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.n_failed else 0


def refine_files(
    paths: Sequence[Path],
    refiner: Any,
    out_dir: Path,
    *,
    prompts: Mapping[str, str] | str,
    save_maps: bool = False,
    resume: bool = True,
    progress: bool | str = True,
    shard: Shard | None = None,
    engine: Engine | None = None,
    batch_size: int | None = None,
) -> BatchSummary:
    """Refine ``paths`` with ``refiner`` (a ``grefine_kit.refiner.refiner.Refiner``, or a ``Recipe``
    each worker builds its own Refiner from) into ``out_dir``.

    ``prompts`` is one prompt for all images or a mapping from ``read_prompts_csv``. A failing
    image (unreadable, no prompt, a model error, NaN output) becomes an error record and the
    run goes on; a setup problem (``SetupError``/``UserError`` other than a bad image: missing
    weights, a broken checkpoint, an unwritable folder) stops it, keeping finished items.
    Item ids are the paths relative to the inputs' common folder (:func:`make_items`).
    """
    if not paths:
        raise UserError("no images to refine")
    return refine_items(
        make_items(paths, prompts),
        refiner,
        out_dir,
        save_maps=save_maps,
        resume=resume,
        progress=progress,
        shard=shard,
        engine=engine,
        batch_size=batch_size,
    )


def _config(refiner: Any) -> str:
    """The configuration part of every item's fingerprint: the recipe hash, plus the SHA-256 of
    the local files the stages read beyond their models (LoRAs, a VAE), when any do."""
    from grefine_kit.parts.roles import STAGE_KIND, STAGE_ROLES
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.refiner.refiner import Refiner
    from grefine_kit.stages.controls import stage_file_digests

    recipe_hash = refiner.hash if isinstance(refiner, Recipe) else getattr(refiner, "recipe_hash", "")
    base = recipe_hash or config_hash({"refiner": type(refiner).__qualname__})
    if isinstance(refiner, Recipe):
        stages = [refiner.build_part(spec) for spec in refiner.parts.values() if spec.kind == STAGE_KIND]
    elif isinstance(refiner, Refiner):  # its stages, a recipe's extra ones included
        stages = [refiner.part(r.name) for r in refiner.roles if r.kind == STAGE_KIND]
    else:
        part = getattr(refiner, "part", None)
        stages = [part(role) for role in STAGE_ROLES] if callable(part) else []
    files = stage_file_digests(s for s in stages if s is not None)
    return config_hash({"config": base, "files": files}) if files else base


def _default_batch_size(refiner: Any) -> int:
    from grefine_kit.recipes.recipe import Recipe

    if isinstance(refiner, Recipe):
        return refiner.options.batch_size
    return int(getattr(refiner, "batch_size", 1))


def plan_tasks(
    folder: RunFolder,
    items: Sequence[Item],
    stems: Sequence[str],
    *,
    config: str,
    base_seed: int | None,
    save_maps: bool,
    resume: bool,
) -> tuple[list[Task], int]:
    """``(tasks to do, number already done)``: an item is done when its last record is ``ok``,
    its fingerprint (input bytes, prompt, seed, recipe, options) matches and its outputs exist."""
    tasks: list[Task] = []
    n_done = 0
    for item, stem in zip(items, stems, strict=True):
        seed = item.seed if item.seed is not None else base_seed
        old = folder.records.get(item.id)
        try:
            fingerprint = item_fingerprint(
                item.image,
                prompt=item.prompt,
                seed=seed,
                config=config,
                options={"maps": bool(save_maps)},
                known=old.get("fingerprint") if isinstance(old, dict) else None,
                region_prompts=item.region_prompts,
            )
        except OSError as exc:
            tasks.append(Task(item, stem, None, None, f"cannot read ({exc.strerror or exc})"))
            continue
        names = OutputNames(stem)
        done, why = folder.resume_state(item.id, fingerprint, [names.image, names.report])
        if resume and done:
            n_done += 1
            continue
        if why is None and not resume and old is not None:
            why = "resume off (--no-resume)"
        tasks.append(Task(item, stem, fingerprint, why))
    return tasks, n_done


def refine_items(
    items: Sequence[Item],
    refiner: Any,
    out_dir: Path,
    *,
    save_maps: bool = False,
    resume: bool = True,
    progress: bool | str = True,
    shard: Shard | None = None,
    engine: Engine | None = None,
    batch_size: int | None = None,
) -> BatchSummary:
    """Refine ``items`` into the run folder ``out_dir`` (see the module docstring).

    ``shard``: do only the items whose id falls in it (output names are chosen over all
    ``items`` first, so the shards' union is the unsharded run). ``engine``: who runs the
    tasks (default: the local engine). ``batch_size``: images per indicator batch (default:
    the refiner's ``batch_size`` option; outputs do not depend on it). ``progress``: a
    :class:`~grefine_kit.progress.RunProgress` mode (True: a bar on a terminal only; ``"auto"``,
    ``"text"``, ``"jsonl"``: also one line per item; False: silent).
    """
    from grefine_kit.engines.local import LocalEngine

    if not items:
        raise UserError("no images to refine")
    if len({it.id for it in items}) != len(items):
        raise UserError("item ids must be unique within a run")
    stems = output_stems([it.image for it in items], [it.id for it in items])
    if shard is not None:
        ids = [it.id for it in items]
        mine = shard.select(list(zip(items, stems, strict=True)), ids)
    else:
        mine = list(zip(items, stems, strict=True))
    engine = engine if engine is not None else LocalEngine()
    size = batch_size if batch_size is not None else _default_batch_size(refiner)
    config = _config(refiner)
    n_ok = n_failed = 0
    redone: Counter[str] = Counter()
    failures = FailureSummary()
    report = RunProgress("refine", len(mine), mode=progress)
    with RunFolder.open(out_dir, inputs=[it.image for it in items]) as folder, report.active():
        try:
            tasks, n_skipped = plan_tasks(
                folder,
                [it for it, _ in mine],
                [s for _, s in mine],
                config=config,
                base_seed=getattr(refiner, "seed", None),
                save_maps=save_maps,
                resume=resume,
            )
            report.planned(n_skipped)
            work = RefineWork(refiner, folder.path, save_maps)
            for record in engine.run(work, tasks, batch_size=size, on_start=report.started):
                fault_point("between-record-and-log")
                folder.append(record)
                if record.get("redone"):
                    redone[str(record["redone"])] += 1
                if record.get("status") == "ok":
                    n_ok += 1
                else:
                    n_failed += 1
                    failures.add(record)
                report.item(record)
        finally:
            report.close()
    return BatchSummary(
        n_ok,
        n_failed,
        n_skipped,
        folder.path,
        folder.log_path,
        sum(redone.values()),
        dict(redone),
        failures,
        len(items) - len(mine),
    )
