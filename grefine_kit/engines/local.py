"""The ``local`` engine: every task in this process, one batch after another; each record is
handed on as soon as its item is done (``Worker.process_each``), not when its batch is."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from grefine_kit.engines.base import Task, Work, batches
from grefine_kit.errors import UserError
from grefine_kit.parts.hints import install_hint
from grefine_kit.runs.faults import fault_point

__all__ = ["LocalEngine"]


def _one_worker(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value != 1:
        raise UserError(
            f"the local engine runs one worker in this process (workers = 1, got {value!r}); "
            f"for more, use --engine ray ({install_hint('grefine-ray')})"
        )


@attrs.define
class LocalEngine:
    """In-process engine (the default). ``workers``: always 1 (accepted so that
    ``--workers 1`` works with any engine)."""

    workers: int = attrs.field(default=1, validator=_one_worker)
    name: str = attrs.field(default="local", init=False)

    def run(
        self,
        work: Work,
        tasks: Sequence[Task],
        *,
        batch_size: int,
        on_start: Callable[[], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        if not tasks:
            return
        worker = work.open()
        if on_start is not None:
            on_start()
        for chunk in batches(tasks, batch_size):
            fault_point("before-batch")
            yield from worker.process_each(chunk)
