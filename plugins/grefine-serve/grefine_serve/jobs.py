"""Jobs and the folder that keeps them.

Layout under ``--out`` (the server's folder; nothing is written outside it)::

    jobs/<id>/job.json        the job's state (written by temp file + rename on every change)
    jobs/<id>/upload/<name>   the uploaded bytes, as sent (after they were checked)
    jobs/<id>/result/         a run folder (``grefine_kit.runs``): refine outputs, or one
                              run folder per indicator for a score (``result/<role>/``)

A job is ``queued``, ``running``, then ``done``, ``failed`` or ``cancelled``. A finished job is
kept ``keep_seconds`` (``--keep``) and then deleted with its files. After a restart the store
reads every ``job.json``: refine jobs that were queued or running are queued again (the run
folder skips what was finished), score jobs in flight are failed (their client is gone).
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.runs import atomic

__all__ = ["FINISHED", "Job", "JobStore"]

FINISHED = frozenset({"done", "failed", "cancelled"})
_ID_CHARS = frozenset("0123456789abcdef")


def new_id() -> str:
    return secrets.token_hex(12)


def valid_id(job_id: str) -> bool:
    return len(job_id) == 24 and set(job_id) <= _ID_CHARS


@attrs.define(eq=False)
class Job:
    """One request's work. ``phases``: the steps already finished (``perceptual``, ``stage1``,
    ... for a refine; indicator roles for a score); ``progress``: their share, 0 to 1."""

    id: str
    kind: str  # "score" or "refine"
    folder: Path
    recipe: str
    upload: str  # the upload's file name under folder/upload
    prompt: str | None = None
    overrides: dict[str, Any] = attrs.field(factory=dict)
    indicators: list[str] = attrs.field(factory=list)
    status: str = "queued"
    progress: float = 0.0
    phase: str | None = None
    phases: list[str] = attrs.field(factory=list)
    total_phases: int = 0
    created: float = attrs.field(factory=time.time)
    started: float | None = None
    finished: float | None = None
    last_seen: float = attrs.field(factory=time.time)
    error: dict[str, str] | None = None
    result: dict[str, Any] | None = None
    files: list[str] = attrs.field(factory=list)
    #: set by cancel(); checked by the worker between steps
    cancel_reason: str | None = None
    _done: threading.Event = attrs.field(factory=threading.Event, init=False)
    _callbacks: list[Callable[[], None]] = attrs.field(factory=list, init=False)

    @property
    def upload_path(self) -> Path:
        return self.folder / "upload" / self.upload

    @property
    def result_dir(self) -> Path:
        return self.folder / "result"

    @property
    def finished_ok(self) -> bool:
        return self.status == "done"

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, filter=lambda a, _v: not a.name.startswith("_"), recurse=False)
        data["folder"] = self.folder.name
        return data

    @classmethod
    def from_json(cls, folder: Path, data: dict[str, Any]) -> Job:
        names = {a.name for a in attrs.fields(cls) if not a.name.startswith("_")}
        fields = {k: v for k, v in data.items() if k in names}
        fields["folder"] = folder
        return cls(**fields)

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the worker thread) when the job finishes; at once if it has."""
        self._callbacks.append(callback)
        if self._done.is_set():
            callback()

    def mark_done(self) -> None:
        self._done.set()
        for callback in list(self._callbacks):
            callback()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


class JobStore:
    """Every job of the server's folder, in memory and on disk (module doc)."""

    def __init__(self, root: Path, keep_seconds: float) -> None:
        self.root = root
        self.jobs_dir = root / "jobs"
        self.keep_seconds = keep_seconds
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    # -- create, look up, save ---------------------------------------------------------------

    def create(self, kind: str, **fields: Any) -> Job:
        job_id = new_id()
        job = Job(job_id, kind, self.jobs_dir / job_id, **fields)
        (job.folder / "upload").mkdir(parents=True)
        return job

    def add(self, job: Job) -> None:
        self.save(job)
        with self._lock:
            self._jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        if not valid_id(job_id):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def save(self, job: Job) -> None:
        atomic.write_json(job.folder / "job.json", job.to_json())

    def discard(self, job: Job) -> None:
        """Forget ``job`` and delete its folder (only ever a folder under ``jobs/``)."""
        with self._lock:
            self._jobs.pop(job.id, None)
        if valid_id(job.folder.name) and job.folder.parent == self.jobs_dir:
            shutil.rmtree(job.folder, ignore_errors=True)

    # -- expiry and restart ------------------------------------------------------------------

    def expired(self, now: float | None = None) -> Iterator[Job]:
        now = time.time() if now is None else now
        for job in self.all():
            if job.status in FINISHED and job.finished is not None and now - job.finished > self.keep_seconds:
                yield job

    def recover(self) -> list[Job]:
        """Read the jobs a previous server left; returns the refine jobs to queue again."""
        again: list[Job] = []
        if not self.jobs_dir.is_dir():
            return again
        for folder in sorted(self.jobs_dir.iterdir()):
            if not valid_id(folder.name):
                continue
            try:
                job = Job.from_json(folder, json.loads((folder / "job.json").read_text("utf-8")))
            except (OSError, ValueError, TypeError):
                shutil.rmtree(folder, ignore_errors=True)  # a job that never got its first save
                continue
            if job.status not in FINISHED:
                if job.kind == "refine":
                    job.status, job.phase, job.phases, job.progress = "queued", None, [], 0.0
                    job.last_seen = time.time()
                    again.append(job)
                else:
                    job.status, job.finished = "failed", time.time()
                    job.error = {"code": "interrupted", "message": "the server restarted during this score"}
                self.save(job)
            if job.status in FINISHED:
                job.mark_done()
            with self._lock:
                self._jobs[job.id] = job
        again.sort(key=lambda j: j.created)
        return again
