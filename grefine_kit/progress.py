"""Progress bars that appear only on a terminal.

A bar redrawn into a log file or a CI log is noise (hundreds of carriage-return lines), so
``progress`` shows a tqdm bar on stderr only when stderr is a terminal and ``enabled`` is true;
otherwise it returns a bar with ``disable=True`` (same API, prints nothing).
"""

from __future__ import annotations

import sys
from typing import Any


def progress(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> Any:
    """A ``tqdm`` bar over ``iterable`` (or with ``total=``), silent when stderr is not a tty."""
    from tqdm.auto import tqdm

    shown = enabled and sys.stderr is not None and sys.stderr.isatty()
    return tqdm(iterable, disable=not shown, **kwargs)
