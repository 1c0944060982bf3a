"""The engine protocol: who runs a run's items, where (docs/scale.md).

A runner (``grefine score``, ``grefine refine``) owns the run folder: it decides which items
are to do (resume, shard), and appends each finished item's record to ``reports.jsonl``. An
**engine** only carries out the work: it opens a :class:`Worker` from the :class:`Work` (once
per process or actor: that is where models load), hands it :class:`Task` batches, and yields
every task's record exactly once, in any order. Workers write their outputs into the run
folder themselves (atomically: temp file + rename) and return small JSON-able records.

Engines are parts of kind ``engine`` (hook ``register_engines``): ``local`` is built in,
``ray`` comes from the ``grefine-ray`` plugin. :func:`grefine_kit.testing.check_engine` is the
conformance check a third-party engine must pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from grefine_kit.runs.items import Item

__all__ = ["Engine", "Task", "Work", "Worker", "batches", "each_record"]


@attrs.frozen
class Task:
    """One item to do, as planned by the runner (picklable: it crosses process boundaries).

    Attributes:
        item: the item (id, image, prompt, seed).
        stem: the base name of its outputs in the run folder (``grefine_kit.runs.layout``).
        fingerprint: what the outputs are made from (None: the input file cannot be read).
        redone: why an earlier record is redone (None: first time, or nothing to say).
        problem: why the file cannot be read (only with ``fingerprint`` None).
    """

    item: Item
    stem: str
    fingerprint: dict[str, Any] | None = None
    redone: str | None = None
    problem: str | None = None


@runtime_checkable
class Worker(Protocol):
    """Does tasks; holds the loaded models (built by :meth:`Work.open`)."""

    def process(self, tasks: Sequence[Task]) -> list[dict[str, Any]]:
        """One record per task, in task order, each with ``id`` and ``status`` (``ok`` or
        ``error``), after writing the task's outputs (and report) into the run folder.

        A per-image problem is an error record. A setup problem every task would hit (missing
        weights, an unwritable folder) is raised as a ``UserError``: the run stops there.

        A worker may also offer ``process_each(tasks)``: the same records, yielded one by one
        as each task finishes (any order), so that in-process engines hand each item to the
        runner (its record appended, progress shown) without waiting for the whole batch
        (:func:`each_record`)."""
        ...


@runtime_checkable
class Work(Protocol):
    """What a run does to each item: picklable when ``portable`` (engines in other processes
    rebuild the models from it), else usable by in-process engines only."""

    out_dir: Path

    @property
    def kind(self) -> str:
        """``"refine"`` or ``"score"`` (for messages)."""
        ...

    @property
    def portable(self) -> bool:
        """True when the work can be pickled and opened in another process."""
        ...

    def open(self) -> Worker:
        """Build the worker (load models); called once per process or actor."""
        ...


@runtime_checkable
class Engine(Protocol):
    """Runs :class:`Task` batches through workers opened from a :class:`Work`."""

    name: str

    def run(
        self,
        work: Work,
        tasks: Sequence[Task],
        *,
        batch_size: int,
        on_start: Callable[[], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield one record per task, each exactly once, as tasks finish (any order).

        ``batch_size``: tasks per :meth:`Worker.process` call. ``on_start``: called once the
        workers are ready (progress bars start there). A ``UserError`` from a worker is
        re-raised as is (records already yielded stay valid)."""
        ...


def batches(tasks: Sequence[Task], size: int) -> Iterator[list[Task]]:
    """``tasks`` in consecutive lists of at most ``size``."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1; got {size}")
    for start in range(0, len(tasks), size):
        yield list(tasks[start : start + size])


def each_record(worker: Worker, tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
    """``worker``'s records for ``tasks``, each as soon as it is done: through the worker's
    ``process_each`` when it has one, else the whole ``process`` list at once."""
    each = getattr(worker, "process_each", None)
    if callable(each):
        yield from each(tasks)
    else:
        yield from worker.process(tasks)
