"""The ``ray`` engine: a run's tasks through a Ray Data ``map_batches`` over an actor pool.

The driver (the ``grefine`` process) already holds only the tasks still to do (the runner
skipped finished ids); they become one dataset row each (``ray.data.from_items``), a pool of
``workers`` :class:`~grefine_ray.actor.TaskActor` actors each opens the worker once and
processes batches of ``batch_size`` tasks, and the records stream back to the driver
(``iter_rows``), which yields them to the runner (that appends ``reports.jsonl``).

Ray: when Ray is already initialised in this process (by the caller), it is used as is and
never shut down. Otherwise the engine starts it, a local Ray (``address`` None) or a
connection to a cluster (``address``), and keeps it for the rest of the process, so that
later runs in the same process skip the start-up.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from grefine_kit import errors
from grefine_kit.engines.base import Task, Work
from grefine_kit.errors import MissingDependencyError, SetupError, UserError

__all__ = ["RayEngine"]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_workers(_inst: Any, _attr: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(
            f"the ray engine's workers must be a whole number of actors, at least 1; got {value!r}"
        )


def _check_address(_inst: Any, _attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise UserError(
            f"the ray engine's address must be a Ray address such as 'auto' or 'ray://host:10001' "
            f"(or none, for a local Ray); got {value!r}"
        )


def _check_cpus(_inst: Any, _attr: attrs.Attribute[Any], value: object) -> None:
    if not _is_number(value) or value <= 0:  # type: ignore[operator]
        raise UserError(f"the ray engine's cpus_per_worker must be a number above 0; got {value!r}")


def _check_gpus(_inst: Any, _attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not _is_number(value) or value < 0):  # type: ignore[operator]
        raise UserError(
            f"the ray engine's gpus_per_worker must be a number of at least 0 (or none: 1 when "
            f"the Ray cluster has a GPU, else 0); got {value!r}"
        )


def _check_threads(_inst: Any, _attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UserError(f"the ray engine's torch_threads must be a whole number, at least 1; got {value!r}")


@attrs.define
class RayEngine:
    """Engine running workers as Ray Data actors (see the module docstring and the README).

    Attributes:
        workers: actors in the pool (each opens the work once, so holds one copy of the models).
        address: None: a local Ray on this machine; else passed to ``ray.init(address=...)``
            (``"auto"``: the cluster this machine belongs to; ``"ray://host:10001"``: Ray Client).
        cpus_per_worker: CPUs Ray reserves per actor (``num_cpus``).
        gpus_per_worker: GPUs per actor (``num_gpus``; fractions share a GPU); None: 1 when
            the Ray cluster reports a GPU, else 0.
        torch_threads: ``torch.set_num_threads`` in each actor before the work opens; None:
            Ray's default (``OMP_NUM_THREADS`` = the actor's CPUs).
    """

    workers: int = attrs.field(default=2, validator=_check_workers)
    address: str | None = attrs.field(default=None, validator=_check_address)
    cpus_per_worker: float = attrs.field(default=1.0, validator=_check_cpus)
    gpus_per_worker: float | None = attrs.field(default=None, validator=_check_gpus)
    torch_threads: int | None = attrs.field(default=None, validator=_check_threads)
    name: str = attrs.field(default="ray", init=False)

    def run(
        self,
        work: Work,
        tasks: Sequence[Task],
        *,
        batch_size: int,
        on_start: Callable[[], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield one record per task, exactly once, as batches finish (any order); see
        :meth:`grefine_kit.engines.base.Engine.run`. A worker's ``UserError`` is re-raised
        with its class and message; any other failure becomes a one-line ``SetupError``."""
        if not tasks:
            return
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch size must be at least 1; got {batch_size!r}")
        if not work.portable:
            raise UserError(
                f"the ray engine needs a portable work (one that can be pickled and opened in "
                f"other processes); this {work.kind} work is not: use --engine local"
            )
        ray = _import_ray()
        with _quiet_ray():
            self._connect(ray)
            dataset = self._dataset(ray, work, tasks, batch_size)
            yield from _stream(dataset, {t.item.id for t in tasks}, on_start)

    def _connect(self, ray: Any) -> None:
        """Use the caller's Ray, else start (or connect to) one and keep it for the process."""
        if ray.is_initialized():
            return
        options: dict[str, Any] = {
            "ignore_reinit_error": True,
            "include_dashboard": False,
            "logging_level": logging.WARNING,
        }
        if self.address is None:
            options["num_cpus"] = max(os.cpu_count() or 1, math.ceil(self.workers * self.cpus_per_worker))
        else:
            options["address"] = self.address
        try:
            ray.init(**options)
        except Exception as exc:
            where = "a local Ray" if self.address is None else f"the Ray cluster at {self.address!r}"
            raise SetupError(f"the ray engine could not start {where}: {_first_line(exc)}") from exc

    def _gpus(self, ray: Any) -> float:
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
        if self.gpus_per_worker is None:
            return 1.0 if cluster_gpus >= 1 else 0.0
        if self.gpus_per_worker > 0 and cluster_gpus == 0 and self.address is None:
            raise UserError(
                f"the ray engine's gpus_per_worker is {self.gpus_per_worker} but the local Ray has "
                "no GPU: the actors could never start (use gpus_per_worker=0)"
            )
        return float(self.gpus_per_worker)

    def _dataset(self, ray: Any, work: Work, tasks: Sequence[Task], batch_size: int) -> Any:
        from grefine_ray.actor import TaskActor, encode_task

        rows = [encode_task(t) for t in tasks]
        # about one block per batch (bounded), so that every actor gets work early
        blocks = max(1, min(math.ceil(len(rows) / batch_size), 10_000))
        gpus = self._gpus(ray)
        # a dataset copies the current DataContext when it is created: no Ray progress bars
        # for this one (the runner shows its own), the caller's context left as it was
        context = ray.data.DataContext.get_current()
        bars = context.enable_progress_bars
        context.enable_progress_bars = False
        try:
            return ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
                TaskActor,
                fn_constructor_kwargs={"work": work, "torch_threads": self.torch_threads},
                batch_size=batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=self.workers),
                num_cpus=self.cpus_per_worker,
                num_gpus=gpus,
            )
        finally:
            context.enable_progress_bars = bars


def _stream(
    dataset: Any, expected: set[str], on_start: Callable[[], None] | None
) -> Iterator[dict[str, Any]]:
    """The records of ``dataset`` (executed now, streaming), each expected id once."""
    from grefine_ray.actor import FAILURE_KEY, decode_row

    rows = iter(dataset.iter_rows())
    started = False
    try:
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except Exception as exc:
                raise SetupError(f"the ray engine's run failed: {_first_line(exc)}") from exc
            record = decode_row(row["record"])
            if FAILURE_KEY in record:
                raise _failure(record[FAILURE_KEY])
            if not started and on_start is not None:
                on_start()
            started = True
            rid = record.get("id")
            if rid not in expected:
                continue  # a duplicate (a retried batch) or an id that was never asked for
            expected.discard(rid)
            yield record
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    if expected:
        example = sorted(expected)[0]
        raise SetupError(f"the ray engine lost {len(expected)} task(s) ({example!r}...): no record came back")


def _failure(marker: dict[str, Any]) -> UserError:
    """The exception for a failure marker: a worker's ``UserError`` class (looked up by name
    in ``grefine_kit.errors``, else ``SetupError``) with its message; other errors: SetupError."""
    message = str(marker.get("message", "unknown error"))
    if not marker.get("user"):
        return SetupError(f"the ray engine's worker failed: {message}")
    cls = getattr(errors, str(marker.get("class", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, UserError)):
        cls = SetupError
    return cls(message)


#: Ray's notices on every successful run: not news for a grefine user (see _RayChatter)
_CHATTER = ("Token authentication is enabled", "Progress bars disabled")


class _RayChatter(logging.Filter):
    """Drops Ray's INFO lines (dataset start, execution plan, finish) and the notices in
    ``_CHATTER`` from the console; every other warning and every error still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        message = record.getMessage()
        return not any(text in message for text in _CHATTER)


@contextlib.contextmanager
def _quiet_ray() -> Iterator[None]:
    """While a run goes on, the console handlers of Ray's and Ray Data's loggers (and the
    loggers) drop :class:`_RayChatter`'s lines; Ray's log files keep everything."""
    chatter = _RayChatter()
    targets: list[logging.Filterer] = []
    for name in ("ray", "ray.data"):
        logger = logging.getLogger(name)
        targets.append(logger)
        targets += [h for h in logger.handlers if isinstance(h, logging.StreamHandler) and not _is_file(h)]
    for target in targets:
        target.addFilter(chatter)
    try:
        yield
    finally:
        for target in targets:
            target.removeFilter(chatter)


def _is_file(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.FileHandler) or "File" in type(handler).__name__


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError(
            f"the ray engine needs Ray Data: pip install 'ray[data]' ({exc})"
        ) from exc
    return ray
