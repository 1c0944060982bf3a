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
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import attrs

from grefine_kit.runs.items import Item

__all__ = ["Engine", "PartSpec", "SpecWork", "Task", "TaskWorker", "Work", "Worker", "batches"]

P = TypeVar("P")
P_co = TypeVar("P_co", covariant=True)


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

    def process_each(self, tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        """One record per task, each with ``id`` and ``status`` (``ok`` or ``error``), yielded
        as soon as that task's outputs (and report) are in the run folder, so that in-process
        engines hand each item to the runner (its record appended, progress shown) without
        waiting for the whole batch.

        A per-image problem is an error record. A setup problem every task would hit (missing
        weights, an unwritable folder) is raised as a ``UserError``: the run stops there."""
        ...

    def process(self, tasks: Sequence[Task]) -> list[dict[str, Any]]:
        """:meth:`process_each`'s records as one list, in task order (for engines that ship a
        batch's records back at once). :class:`TaskWorker` provides it."""
        ...


class TaskWorker:
    """A base for workers: :meth:`process` from the subclass's :meth:`process_each`."""

    def process_each(self, tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def process(self, tasks: Sequence[Task]) -> list[dict[str, Any]]:
        order = {t.item.id: i for i, t in enumerate(tasks)}
        return sorted(self.process_each(tasks), key=lambda r: order[r["id"]])


@runtime_checkable
class Work(Protocol):
    """What a run does to each item. It carries a picklable spec of its parts (a recipe, an
    indicator spec) and, on the machine that planned the run, the parts already built from it:
    in-process engines open their worker on those (parts are built once per run), and a pickled
    copy drops them, so that engines in other processes rebuild the parts from the spec.
    ``portable``: False only when no spec was given (a caller handed built parts alone)."""

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
        """The worker (models load when it first runs): on the built parts when this copy
        holds them, else built from the spec; called once per process or actor."""
        ...


class PartSpec(Protocol[P_co]):
    """A picklable description of parts that builds them (a ``Recipe`` builds a Refiner, an
    ``IndicatorSpec`` an indicator)."""

    def build(self) -> P_co: ...


@attrs.define
class SpecWork(Generic[P]):
    """A base for works: ``spec`` (picklable) and ``built``, the parts built from it in the
    process that planned the run (see :class:`Work`). Subclasses add their options as fields
    and :meth:`worker`, the worker on built parts.

    A pickled copy keeps every field but ``built`` when there is a ``spec`` (the parts never
    travel: the copy builds its own on :meth:`open`); with no spec it keeps ``built`` and is
    not ``portable``."""

    spec: PartSpec[P] | None
    built: P | None
    out_dir: Path

    @property
    def portable(self) -> bool:
        return self.spec is not None

    def open(self) -> Worker:
        if self.built is not None:
            return self.worker(self.built)
        if self.spec is None:
            raise ValueError(f"{type(self).__name__} needs a spec or built parts")
        return self.worker(self.spec.build())

    def worker(self, built: P) -> Worker:
        raise NotImplementedError

    def __reduce__(self) -> tuple[Any, ...]:
        fields = attrs.asdict(self, recurse=False)
        if self.spec is not None:
            fields["built"] = None
        return (_rebuild_work, (type(self), fields))


def _rebuild_work(cls: type[SpecWork[Any]], fields: dict[str, Any]) -> SpecWork[Any]:
    return cls(**fields)


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
