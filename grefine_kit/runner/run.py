"""The one runner behind ``grefine refine`` and ``grefine score``: plan, drive, record, count.

:func:`run_job` owns the run folder (``grefine_kit.runs.folder.RunFolder``: locked, never an
input folder, every file written by temp + rename). It chooses the output names over all items,
keeps this shard's items (:attr:`RunOptions.shard <grefine_kit.runner.options.RunOptions>`),
plans the tasks (:func:`plan_tasks`: with ``resume``, an item is skipped only when its last
record says ``ok``, its fingerprint matches and its outputs exist; anything else is redone
and the new record's ``redone`` says why), hands them to the engine (``grefine_kit.engines``;
``local`` by default), appends each record to ``reports.jsonl`` as it comes back, counts it
and shows it on a :class:`~grefine_kit.progress.RunProgress`, then lets the job finish (the
score job rebuilds its results file) and returns one :class:`RunSummary`.

What differs between refining and scoring is a :class:`Job`: its fingerprint rule, the
outputs that must exist for an item to count as done, the :class:`~grefine_kit.engines.base.Work`
the engine opens workers from, and what is left to do when the run ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from grefine_kit.engines.base import Task, Work
from grefine_kit.errors import UserError
from grefine_kit.progress import RunProgress
from grefine_kit.runner.options import RunOptions
from grefine_kit.runs.failures import FailureSummary
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.fingerprint import item_fingerprint
from grefine_kit.runs.folder import RunFolder
from grefine_kit.runs.items import Item
from grefine_kit.runs.layout import output_stems
from grefine_kit.runs.shards import Shard

__all__ = ["Fingerprints", "Job", "RunSummary", "plan_tasks", "run_job"]


@attrs.frozen
class RunSummary:
    """What a run did. ``exit_code``: 0 when no item failed, else 1.

    ``n_redone``: items redone although a record existed (``redo_reasons``: why, counted);
    ``failures``: the failed records grouped by reason; ``n_other_shards``: items left to
    other shards (``shard``: the shard this run did, None for all); ``results_path``: the
    results file a score run rebuilds (None for refine)."""

    n_ok: int
    n_failed: int
    n_skipped: int
    out_dir: Path
    reports_path: Path
    results_path: Path | None = None
    n_redone: int = 0
    redo_reasons: Mapping[str, int] = attrs.field(factory=dict)
    failures: FailureSummary = attrs.field(factory=FailureSummary, eq=False)
    n_other_shards: int = 0
    shard: Shard | None = None

    @property
    def n_total(self) -> int:
        return self.n_ok + self.n_failed + self.n_skipped

    @property
    def exit_code(self) -> int:
        return 1 if self.n_failed else 0

    @property
    def shard_note(self) -> str:
        """`` (shard I/N; K item(s) in other shards)``, or ``""`` for an unsharded run."""
        if self.shard is None:
            return ""
        return f" (shard {self.shard}; {self.n_other_shards} item(s) in other shards)"


@attrs.frozen
class Fingerprints:
    """How a job fingerprints its items (``grefine_kit.runs.fingerprint.item_fingerprint``).

    ``config``: the setup's hash (recipe, indicator options, stage files); ``base_seed``: the
    seed of items without their own (None: the item's seed only); ``save_maps``: kept in the
    options (a rerun with other ``--maps`` is redone); ``region_prompts``: whether the item's
    own region prompts count (refine: they change the output)."""

    config: str
    base_seed: int | None
    save_maps: bool
    region_prompts: bool = False

    def of(self, item: Item, known: Mapping[str, Any] | None) -> dict[str, Any]:
        """``item``'s fingerprint (``known``: its recorded one, for the cheap input check);
        raises ``OSError`` when the input cannot be read."""
        return item_fingerprint(
            item.image,
            prompt=item.prompt,
            seed=item.seed if item.seed is not None else self.base_seed,
            config=self.config,
            options={"maps": bool(self.save_maps)},
            known=known,
            region_prompts=item.region_prompts if self.region_prompts else None,
        )


class Job(Protocol):
    """What one kind of run supplies to :func:`run_job` (refine: ``RefineJob``, score:
    ``ScoreJob``)."""

    @property
    def kind(self) -> str:
        """``"refine"`` or ``"score"``: progress lines and messages."""
        ...

    @property
    def fingerprints(self) -> Fingerprints:
        """How items are fingerprinted (resume decisions)."""
        ...

    @property
    def batch_size(self) -> int:
        """Items per worker batch when the options give none."""
        ...

    def required_outputs(self, stem: str) -> list[str]:
        """Files an item with output stem ``stem`` must have in the folder to count as done."""
        ...

    def work(self, out_dir: Path) -> Work:
        """The work the engine opens its workers from, writing into ``out_dir``."""
        ...

    def finish(self, folder: RunFolder, items: Sequence[Item]) -> Path | None:
        """Called when the run ends, however it ends; returns the results file it wrote, if any."""
        ...


def plan_tasks(
    folder: RunFolder,
    pairs: Sequence[tuple[Item, str]],
    fingerprints: Fingerprints,
    required: Job,
    *,
    resume: bool,
) -> tuple[list[Task], int]:
    """``(tasks to do, number already done)`` for ``(item, output stem)`` pairs: an item is done
    when its last record is ``ok``, its fingerprint matches and ``required``'s outputs exist."""
    tasks: list[Task] = []
    n_done = 0
    for item, stem in pairs:
        old = folder.records.get(item.id)
        try:
            fingerprint = fingerprints.of(item, old.get("fingerprint") if isinstance(old, dict) else None)
        except OSError as exc:  # unreadable or not a regular file: an error record, never opened
            tasks.append(Task(item, stem, None, None, str(exc.strerror or exc)))
            continue
        done, why = folder.resume_state(item.id, fingerprint, required.required_outputs(stem))
        if resume and done:
            n_done += 1
            continue
        if why is None and not resume and old is not None:
            why = "resume off (--no-resume)"
        tasks.append(Task(item, stem, fingerprint, why))
    return tasks, n_done


def run_job(items: Sequence[Item], job: Job, out_dir: Path, options: RunOptions) -> RunSummary:
    """Run ``job`` on ``items`` into the run folder ``out_dir`` (module docstring).

    A failing item (unreadable, no prompt, a model error, NaN output) becomes an error record
    and the run goes on; a setup problem (a ``UserError`` that is not an item's own: missing
    weights, a broken checkpoint, an unwritable folder) stops it, keeping finished items."""
    from grefine_kit.engines.local import LocalEngine

    if len({it.id for it in items}) != len(items):
        raise UserError("item ids must be unique within a run")
    stems = output_stems([it.image for it in items], [it.id for it in items])
    pairs = list(zip(items, stems, strict=True))
    mine = options.shard.select(pairs, [it.id for it in items]) if options.shard is not None else pairs
    engine = options.engine if options.engine is not None else LocalEngine()
    batch_size = options.batch_size if options.batch_size is not None else job.batch_size
    n_ok = n_failed = n_skipped = 0
    redone: Counter[str] = Counter()
    failures = FailureSummary()
    results_path: Path | None = None
    report = RunProgress(job.kind, len(mine), mode=options.progress)
    with RunFolder.open(out_dir, inputs=[it.image for it in items]) as folder, report.active():
        try:
            tasks, n_skipped = plan_tasks(folder, mine, job.fingerprints, job, resume=options.resume)
            report.planned(n_skipped)
            work = job.work(folder.path)
            for record in engine.run(work, tasks, batch_size=batch_size, on_start=report.started):
                fault_point("between-record-and-log")
                folder.append(record)
                if record.get("status") == "ok":
                    n_ok += 1
                else:
                    n_failed += 1
                    failures.add(record)
                if record.get("redone"):
                    redone[str(record["redone"])] += 1
                report.item(record)
        finally:
            report.close()
            results_path = job.finish(folder, items)
    return RunSummary(
        n_ok=n_ok,
        n_failed=n_failed,
        n_skipped=n_skipped,
        out_dir=folder.path,
        reports_path=folder.log_path,
        results_path=results_path,
        n_redone=sum(redone.values()),
        redo_reasons=dict(redone),
        failures=failures,
        n_other_shards=len(items) - len(mine),
        shard=options.shard,
    )
