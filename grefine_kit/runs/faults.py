"""Fault points: named places in the runners where a test can make the process die.

``fault_point("after-output-write")`` does nothing unless the environment variable
``GREFINE_FAULT`` names that point: ``GREFINE_FAULT=after-output-write:2`` makes the process
SIGKILL itself the 2nd time it passes there (count defaults to 1; ``...:2:TERM`` sends SIGTERM
instead, to test the graceful stop). This is how the
fault-injection tests kill a run at an exact write boundary, without sleeps or races. A kill
is the worst a crash, an OOM killer or a power cut can do to the files, so surviving it means
surviving them.

Points (in the order a refine item passes them): ``before-item``, ``mid-output-write`` (half of
a temp file written), ``after-output-write``, ``between-record-and-log`` (per-item report
written, log line not yet), ``mid-log-line`` (half a log line written and synced),
``after-log-line``; the score runner passes the same write points and ``after-results``.
"""

from __future__ import annotations

import os
import signal
from typing import Final

__all__ = ["ENV_FAULT", "FAULT_POINTS", "fault_armed", "fault_point"]

ENV_FAULT: Final = "GREFINE_FAULT"
FAULT_POINTS: Final = (
    "before-item",
    "mid-output-write",
    "after-output-write",
    "between-record-and-log",
    "mid-log-line",
    "after-log-line",
    "after-results",
)

_passes: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(ENV_FAULT, "")
    if not spec:
        return None
    name, _, rest = spec.partition(":")
    count = rest.partition(":")[0]
    try:
        n = int(count) if count else 1
    except ValueError:
        n = 1
    return name.strip(), max(1, n)


def _signal() -> int:
    how = os.environ.get(ENV_FAULT, "").split(":")[2:3]
    return signal.SIGTERM if how == ["TERM"] else signal.SIGKILL


def fault_armed(name: str) -> bool:
    """True when passing ``name`` now would kill the process (the runner may prepare, e.g.
    flush half a line, before calling :func:`fault_point`)."""
    target = _target()
    return target is not None and target[0] == name and _passes.get(name, 0) + 1 == target[1]


def fault_point(name: str) -> None:
    """Pass the fault point ``name``: SIGKILL this process if ``GREFINE_FAULT`` says so."""
    target = _target()
    if target is None or target[0] != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] == target[1]:
        os.kill(os.getpid(), _signal())
