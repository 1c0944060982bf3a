"""What runs inside each Ray actor, and the row format between the driver and the actors.

Rows in: ``{"id": str, "task": bytes}`` (the :class:`~grefine_kit.engines.base.Task` pickled).
Rows out: ``{"record": str}``, each the JSON text of one worker record, or of a *failure
marker* ``{"__grefine_failure__": {"class": ..., "message": ..., "user": bool}}`` when opening
the worker or processing a batch raised. Errors travel as data rather than as Ray exceptions
so that the driver can re-raise a worker's ``UserError`` with its own class and message
instead of a ``RayTaskError`` traceback.

This module imports neither ray nor torch at import time (torch only when ``torch_threads``
is set), so it is cheap to load in every actor.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np

from grefine_kit.engines.base import Task, Work, Worker
from grefine_kit.errors import UserError, error_message, error_text

__all__ = ["FAILURE_KEY", "TaskActor", "decode_row", "encode_task", "failure_row"]

#: key of a failure marker record (never a key of a real record)
FAILURE_KEY = "__grefine_failure__"


def encode_task(task: Task) -> dict[str, Any]:
    """The dataset row for ``task``: its id (for Ray's own display) and the pickled task."""
    return {"id": task.item.id, "task": pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)}


def failure_row(exc: BaseException) -> str:
    """The marker for ``exc``: a ``UserError`` keeps its class name and message; anything
    else becomes ``"<Type>: <message>"`` with ``user`` false."""
    user = isinstance(exc, UserError)
    marker = {
        "class": type(exc).__name__,
        "message": error_text(exc) if user else error_message(exc),
        "user": user,
    }
    return json.dumps({FAILURE_KEY: marker})


def decode_row(text: str) -> dict[str, Any]:
    """A record (or a failure marker) from the JSON text of an output row."""
    record: dict[str, Any] = json.loads(text)
    return record


class TaskActor:
    """A Ray Data callable class: opens the worker once (``__init__``, i.e. once per actor:
    models load there), then turns each batch of task rows into a batch of record rows.

    ``torch_threads``: when set, ``torch.set_num_threads`` before the worker opens (Ray itself
    sets ``OMP_NUM_THREADS`` to the actor's CPU count otherwise). A failure while opening is
    kept and reported as the first (only) row of every batch, never raised.
    """

    def __init__(self, work: Work, torch_threads: int | None = None) -> None:
        self._worker: Worker | None = None
        self._failure: str | None = None
        try:
            if torch_threads is not None:
                import torch

                torch.set_num_threads(torch_threads)
            self._worker = work.open()
        except Exception as exc:  # reported to the driver as data (see the module docstring)
            self._failure = failure_row(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._worker is None:
            return _rows([self._failure or failure_row(RuntimeError("the worker did not open"))])
        try:
            tasks: list[Task] = [pickle.loads(blob) for blob in batch["task"]]
            records = self._worker.process(tasks)
            if len(records) != len(tasks):
                raise RuntimeError(f"the worker returned {len(records)} records for {len(tasks)} tasks")
            # default=str as the run folder's own log writer: the same text for odd values
            return _rows([json.dumps(record, default=str) for record in records])
        except Exception as exc:
            return _rows([failure_row(exc)])


def _rows(texts: list[str]) -> dict[str, np.ndarray]:
    column = np.empty(len(texts), dtype=object)
    column[:] = texts
    return {"record": column}
