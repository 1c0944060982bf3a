"""A bounded queue and a fixed number of worker threads (``--queue``, ``--workers``).

``submit`` never blocks: a full queue is ``ApiError`` 429 with ``Retry-After`` (the expected
wait from recent job times). Each worker takes a job, gets its recipe's shared models from the
:class:`~grefine_serve.catalog.ModelStore` (built at most once) and runs it while holding that
entry's lock. A janitor thread deletes expired jobs and cancels abandoned refine jobs.
"""

from __future__ import annotations

import collections
import math
import queue
import sys
import threading
import time
import traceback
from typing import Any

from grefine_kit.errors import UserError
from grefine_serve.catalog import Catalog, ModelStore
from grefine_serve.errors import ApiError
from grefine_serve.execute import JobStopped, Steps, run_refine, run_score, stop_reason
from grefine_serve.jobs import FINISHED, Job, JobStore
from grefine_serve.settings import ServeSettings

__all__ = ["WorkerPool"]


class WorkerPool:
    """The queue, the workers and the janitor of one server (module doc)."""

    def __init__(
        self, settings: ServeSettings, store: JobStore, catalog: Catalog, models: ModelStore
    ) -> None:
        self.settings = settings
        self.store = store
        self.catalog = catalog
        self.models = models
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=settings.queue_size)
        self.running: set[str] = set()
        self.durations: collections.deque[float] = collections.deque(maxlen=50)
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"grefine-serve-worker-{i}", daemon=True)
            for i in range(settings.workers)
        ]
        self._janitor = threading.Thread(target=self._sweep, name="grefine-serve-janitor", daemon=True)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._janitor.start()

    def stop(self) -> None:
        """Stop taking jobs (a running one keeps its state on disk and resumes after a restart)."""
        self._stop.set()
        for _ in self._threads:
            try:
                self.queue.put_nowait(None)
            except queue.Full:
                break

    # -- submitting ----------------------------------------------------------------------

    def retry_after(self) -> int:
        """Seconds a client should wait before trying again (at least 1)."""
        with self._lock:
            mean = sum(self.durations) / len(self.durations) if self.durations else 2.0
            busy = len(self.running)
        waiting = self.queue.qsize() + busy
        return max(1, min(3600, math.ceil(mean * waiting / self.settings.workers)))

    def submit(self, job: Job) -> None:
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise ApiError(
                429,
                "queue_full",
                f"the queue is full ({self.settings.queue_size} jobs waiting); try again later",
                headers={"Retry-After": str(self.retry_after())},
            ) from None

    def requeue(self, jobs: list[Job]) -> None:
        """Queue ``jobs`` again after a restart, waiting for room (never a 429 for them)."""
        for job in jobs:
            if job.status == "queued":
                self.queue.put(job)

    def cancel(self, job: Job, reason: str) -> None:
        """Ask ``job`` to stop; a queued job is finished at once, a running one at its next step."""
        if job.status in FINISHED:
            return
        job.cancel_reason = reason
        if job.status == "queued":
            self._finish(job, "cancelled", error={"code": "cancelled", "message": reason})

    # -- working -------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.queue.get()
            if job is None:
                return
            if job.status != "queued":  # cancelled while it waited
                continue
            with self._lock:
                self.running.add(job.id)
            started = time.perf_counter()
            try:
                self._run(job)
            finally:
                with self._lock:
                    self.running.discard(job.id)
                    self.durations.append(time.perf_counter() - started)

    def _run(self, job: Job) -> None:
        settings = self.settings
        reason = stop_reason(job, settings.job_timeout, settings.abandon_after)
        if reason is not None:
            self._finish(job, "cancelled", error={"code": "cancelled", "message": reason})
            return
        job.status, job.started = "running", time.time()
        self.store.save(job)
        steps = Steps(job, self.store.save, settings.job_timeout, settings.abandon_after)
        try:
            recipe = self.catalog.resolve(job.recipe, job.overrides or None)
            loaded = self.models.get(recipe)
            with loaded.lock:
                loaded.jobs += 1
                if job.kind == "refine":
                    result = run_refine(job, loaded.refiner, steps)
                else:
                    result = run_score(job, loaded.refiner, steps, settings.max_pixels)
        except JobStopped as exc:
            self._finish(job, "cancelled", error={"code": "cancelled", "message": str(exc)})
        except ApiError as exc:
            self._finish(job, "failed", error={"code": exc.code, "message": exc.message})
        except UserError as exc:
            self._finish(job, "failed", error={"code": "job_failed", "message": str(exc)})
        except Exception as exc:  # a bug: the job fails, the server stays up, the log has it
            traceback.print_exc(file=sys.stderr)
            message = f"internal error: {type(exc).__name__}: {exc}"
            self._finish(job, "failed", error={"code": "internal_error", "message": message})
        else:
            job.progress = 1.0
            self._finish(job, "done", result=result)

    def _finish(
        self,
        job: Job,
        status: str,
        *,
        error: dict[str, str] | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        job.status, job.finished, job.phase = status, time.time(), None
        job.error, job.result = error, result
        self.counts[status] += 1
        self.store.save(job)
        job.mark_done()

    # -- the janitor ---------------------------------------------------------------------

    def _sweep(self) -> None:
        period = max(0.5, min(30.0, self.settings.keep_seconds / 4, self.settings.abandon_after / 4))
        while not self._stop.wait(period):
            self.sweep_once()

    def sweep_once(self, now: float | None = None) -> None:
        for job in list(self.store.expired(now)):
            self.store.discard(job)
        for job in self.store.all():
            if job.status == "queued":
                reason = stop_reason(job, self.settings.job_timeout, self.settings.abandon_after, now)
                if reason is not None:
                    self.cancel(job, reason)
