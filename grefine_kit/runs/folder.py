"""A run folder: the output folder of one run, safe by construction.

:meth:`RunFolder.open` (a context manager)

- refuses an output folder that holds input files (``--out`` equal to, or above, an input's
  folder): outputs would overwrite inputs and the next run would take outputs as inputs;
- takes the folder's lock (``.grefine.lock``, ``fcntl.flock``): a second run into the same
  folder fails at once (exit 2) naming the holder's pid, host and start time. The lock is
  released by the kernel when the process ends, however it ends;
- removes temporary files a killed run left (only the lock holder writes there);
- repairs the record log (``reports.jsonl``): a partial last line (a kill mid-write) is cut
  off with a warning, so that item is redone and the next line is never glued onto it.

Records are appended one whole line per ``os.write`` on an ``O_APPEND`` descriptor, then
``fsync``-ed: a line is either in the log whole or (after repair) not at all. The last record
of an id wins.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import attrs

from grefine_kit.errors import OutputWriteError, RunLockedError, SetupError, UserError
from grefine_kit.runs.atomic import remove_stale_temps, write_failure
from grefine_kit.runs.faults import fault_armed, fault_point
from grefine_kit.runs.fingerprint import stale_reason
from grefine_kit.runs.items import display_path

__all__ = ["LOCK_NAME", "LOG_NAME", "RunFolder", "check_not_inputs"]

LOCK_NAME: Final = ".grefine.lock"
LOG_NAME: Final = "reports.jsonl"


def _warn(message: str) -> None:
    print(f"grefine: warning: {message}", file=sys.stderr)


def check_not_inputs(out_dir: Path, inputs: Sequence[Path]) -> None:
    """Raise UserError when ``out_dir`` is, or lies above, the folder of any input file."""
    out = Path(os.path.realpath(out_dir))
    for p in inputs:
        real = Path(os.path.realpath(p))
        if real == out or out in real.parents:
            raise UserError(
                f"--out {display_path(out_dir)} holds input files ({display_path(p)}): outputs could "
                "overwrite inputs and a rerun would take outputs as inputs; choose an output folder "
                "outside the input folders"
            )


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SetupError(
            f"{display_path(out)}: cannot create the output folder ({exc.strerror or exc})"
        ) from None
    if not out.is_dir():
        raise UserError(f"{display_path(out)}: not a folder")


@attrs.define
class RunFolder:
    """An open, locked run folder. Use :meth:`open`; ``records`` maps id -> last record."""

    path: Path
    log_path: Path
    records: dict[str, dict[str, Any]]
    _lock_fd: int
    _log_fd: int = -1
    #: ids whose log line was cut off by the repair (redone, and the record says so)
    repaired: set[str] = attrs.field(factory=set)

    @classmethod
    @contextmanager
    def open(
        cls, out_dir: str | os.PathLike[str], *, inputs: Sequence[Path] = (), log_name: str = LOG_NAME
    ) -> Iterator[RunFolder]:
        """Check, create, lock and repair ``out_dir``; yields the open folder, unlocks at exit."""
        out = Path(out_dir)
        check_not_inputs(out, inputs)
        _make_dir(out)
        lock_fd = _lock(out)
        try:
            remove_stale_temps(out)
            log_path = out / log_name
            records, repaired = _read_log(log_path)
            folder = cls(out, log_path, records, lock_fd, repaired=repaired)
            try:
                yield folder
            finally:
                folder._close_log()
        finally:
            os.close(lock_fd)  # releases the flock

    # -- the record log ---------------------------------------------------------------------

    def append(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (needs an ``id``) as one line, atomically and durably."""
        line = (json.dumps(record, default=str, ensure_ascii=True) + "\n").encode("ascii")
        if self._log_fd < 0:
            try:
                self._log_fd = _open_own(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            except OSError as exc:
                raise write_failure(self.log_path, exc, per_item=False) from None
        start = -1
        try:
            start = os.lseek(self._log_fd, 0, os.SEEK_END)
            if fault_armed("mid-log-line"):
                os.write(self._log_fd, line[: len(line) // 2])  # what a kill mid-write leaves
                os.fsync(self._log_fd)
            fault_point("mid-log-line")  # counts every pass; kills only when armed
            n = os.write(self._log_fd, line)
            if n != len(line):  # only on a full disk
                raise OSError(errno.ENOSPC, "short write (disk full?)")
            os.fsync(self._log_fd)
        except OSError as exc:
            if start >= 0:  # never leave half a line behind (we hold the lock: no other writer)
                with contextlib.suppress(OSError):
                    os.ftruncate(self._log_fd, start)
            raise write_failure(self.log_path, exc, per_item=False) from None
        self.records[str(record["id"])] = dict(record)
        fault_point("after-log-line")

    def resume_state(
        self, item_id: str, fingerprint: Mapping[str, Any], outputs: Sequence[str]
    ) -> tuple[bool, str | None]:
        """``(done, why not)`` for an item: done only when its last record says ``ok``, its
        fingerprint matches ``fingerprint`` and every file in ``outputs`` (and in the record's own
        ``outputs`` list) exists. ``why not`` is
        None for an item never recorded, else the reason it is redone."""
        if item_id in self.repaired:
            return False, "its log line was cut off by an interrupted run"
        record = self.records.get(item_id)
        if record is None:
            return False, None
        if record.get("status") != "ok":
            return False, "failed before"
        reason = stale_reason(record.get("fingerprint"), fingerprint)
        if reason is not None:
            return False, reason
        listed = record.get("outputs")
        wanted = (
            [*outputs, *(str(n) for n in listed if n not in outputs)] if isinstance(listed, list) else outputs
        )
        missing = [name for name in wanted if not (self.path / name).is_file()]
        if missing:
            return False, f"output missing ({missing[0]})"
        return True, None

    def _close_log(self) -> None:
        if self._log_fd >= 0:
            os.close(self._log_fd)
            self._log_fd = -1


def _lock(out: Path) -> int:
    import fcntl

    path = out / LOCK_NAME
    try:
        fd = _open_own(path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise OutputWriteError(
            f"{display_path(out)}: cannot write to the output folder ({exc.strerror or exc})"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise RunLockedError(
                f"{display_path(out)} is in use by another run ({holder}); wait for it to finish "
                f"or choose another --out"
            ) from None
        raise SetupError(
            f"{display_path(out)}: cannot lock the output folder ({exc.strerror or exc})"
        ) from None
    info = json.dumps(
        {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    )
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode() + b"\n", 0)
    except OSError as exc:
        os.close(fd)
        raise write_failure(path, exc, per_item=False) from None
    return fd


def _open_own(path: Path, flags: int) -> int:
    """Open a file the run owns in its folder, never through a symbolic link and only when it
    is a regular file: a link or a FIFO planted there is one UserError line, and nothing
    outside the folder is read or written."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise _not_ours(path, "a symbolic link") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_ours(path, "not a regular file")
    os.set_blocking(fd, True)
    return fd


def _not_ours(path: Path, what: str) -> SetupError:
    return SetupError(
        f"{display_path(path)} is {what}; grefine never writes through links or into special "
        "files in an output folder: remove it, or choose another --out"
    )


def _holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        if not data.get("pid"):
            return "holder just starting"
        return f"pid {data.get('pid')} on {data.get('host')}, started {data.get('started')}"
    except (OSError, ValueError, AttributeError):
        return "holder unknown"


def _read_log(path: Path) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Records by id (last wins), after cutting off a partial last line; ids of cut lines."""
    try:
        fd = _open_own(path, os.O_RDONLY)
    except FileNotFoundError:
        return {}, set()
    except OSError as exc:
        raise SetupError(
            f"{display_path(path)}: cannot read the record log ({exc.strerror or exc})"
        ) from None
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SetupError(
            f"{display_path(path)}: cannot read the record log ({exc.strerror or exc})"
        ) from None
    repaired: set[str] = set()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        tail = data[keep:]
        _warn(
            f"{display_path(path)}: dropped a partial last line ({len(tail)} bytes, an interrupted "
            "write); that item will be redone"
        )
        repaired |= _ids_in(tail)
        try:
            fd = _open_own(path, os.O_RDWR)
            try:
                os.ftruncate(fd, keep)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise write_failure(path, exc, per_item=False) from None
        data = data[:keep]
    records: dict[str, dict[str, Any]] = {}
    bad = 0
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            bad += 1
            continue
        if isinstance(rec, dict):
            key = rec.get("id", rec.get("output"))  # older logs had no id
            if key is not None:
                records[str(key)] = rec
    if bad:
        _warn(f"{display_path(path)}: skipped {bad} unreadable line(s); their items will be redone")
    return records, repaired


def _ids_in(tail: bytes) -> set[str]:
    # a cut line still starts with {"id": "...", when the id is written first
    text = tail.decode("ascii", "replace")
    marker = '{"id": "'
    if text.startswith(marker):
        end = text.find('"', len(marker))
        if end > 0:
            try:
                return {json.loads(text[len(marker) - 1 : end + 1])}
            except ValueError:
                return set()
    return set()
