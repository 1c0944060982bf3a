"""Atomic file writes: a file in a run folder is either absent, its old version, or whole.

No write ever follows a symbolic link: a link planted at an output's name is replaced by the
file, and whatever it pointed to is left alone. Every write goes to a unique temporary name in
the same folder (``.<name>.<pid>-<random>.tmp``) and is renamed over the target with
``os.replace`` (atomic on POSIX within one file system), after an ``fsync`` of the data. A
failed write removes its temporary file and raises :class:`~grefine_kit.errors.OutputWriteError`
(a setup error: a read-only folder or a full disk would fail every item), or
:class:`~grefine_kit.errors.OutputNameError` when the file's name is at fault (too long for the
file system): that item's error, the run goes on. Temporary files left by a killed run are removed by
:func:`remove_stale_temps` when the next run takes the folder's lock.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from grefine_kit.errors import OutputNameError, OutputWriteError, UserError
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.items import display_path

__all__ = [
    "TEMP_SUFFIX",
    "remove_stale_temps",
    "write_bytes",
    "write_json",
    "write_npy",
    "write_png",
    "write_text",
]

TEMP_SUFFIX = ".tmp"


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


#: errors that belong to one file's name, not to the folder: that item fails, the run goes on
NAME_ERRNOS: Final = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})


def write_failure(path: Path, exc: OSError, *, per_item: bool = True) -> UserError:
    """The one-line error for a write that failed: a setup error (read-only folder, full
    disk...), or, with ``per_item``, :class:`OutputNameError` (that item's error) when the
    file's name is at fault."""
    why = exc.strerror or str(exc)
    name = display_path(path.name)
    if per_item and exc.errno in NAME_ERRNOS:
        return OutputNameError(f"{display_path(path.parent)}: cannot create {name} ({why})")
    return OutputWriteError(
        f"{display_path(path.parent)}: cannot write {name} ({why}); finished items are kept"
    )


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename); returns ``path``."""
    path = Path(path)
    tmp = _temp_name(path)
    try:
        # O_EXCL never opens an existing name (a planted link included); the rename below
        # replaces a link at ``path`` itself, never the file it points to
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            half = len(data) // 2
            _write_all(fd, data[:half])
            fault_point("mid-output-write")  # a kill here leaves only a half temp file
            _write_all(fd, data[half:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise write_failure(path, exc) from None
    except BaseException:
        _remove(tmp)
        raise
    return path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _remove(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()


def write_text(path: Path, text: str) -> Path:
    """UTF-8 text, atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Indented JSON (non-finite floats written as null-safe strings by ``default=str``)."""
    return write_text(path, json.dumps(data, indent=2, default=str, ensure_ascii=True) + "\n")


def write_png(path: Path, image: Any, **options: Any) -> Path:
    """A PIL image as PNG (``options`` go to ``Image.save``, e.g. ``compress_level``)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", **options)
    return write_bytes(path, buf.getvalue())


def write_npy(path: Path, array: Any) -> Path:
    """A numpy array as ``.npy`` (no pickles)."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return write_bytes(path, buf.getvalue())


def remove_stale_temps(folder: Path) -> int:
    """Remove temporary files a killed run left in ``folder``; returns how many.

    Call only while holding the folder's lock (no other run can be writing then)."""
    n = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.startswith(".") and name.endswith(TEMP_SUFFIX) and "-" in name:
            try:
                os.unlink(os.path.join(folder, name))
                n += 1
            except OSError:
                pass
    return n
