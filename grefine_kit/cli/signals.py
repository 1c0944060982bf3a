"""SIGTERM handled like Ctrl-C: the run stops where it is, keeps what it finished, writes its
results file and says so in one line.

A plain ``kill`` (or a scheduler's stop, ``timeout``, ``docker stop``) sends SIGTERM, whose
default action ends the process at once: no ``results.csv``, no closing line. The console
entry point installs :func:`handle_termination`, which turns the first SIGTERM into
:class:`Terminated` (a ``KeyboardInterrupt``), so every ``finally`` that Ctrl-C runs runs too;
the exit code stays the conventional 128 + 15 = 143. A second SIGTERM ends the process at once
(files are still whole: every write is atomic).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["Terminated", "exit_code", "handle_termination", "interruption_line"]


class Terminated(KeyboardInterrupt):
    """The process received ``signum`` (SIGTERM): stop like on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second signal is not caught: it ends the process
    raise Terminated(signum)


def handle_termination() -> None:
    """Install the SIGTERM handler (main thread only; a handler someone else set is kept)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_terminated)


def exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C, 128 + the signal number for :class:`Terminated` (143 for SIGTERM)."""
    return 128 + exc.signum if isinstance(exc, Terminated) else 130


def interruption_line(exc: BaseException) -> str:
    """The closing line of an interrupted run."""
    what = f"terminated ({signal.Signals(exc.signum).name})" if isinstance(exc, Terminated) else "interrupted"
    return f"grefine: {what}; finished items are kept (rerun to continue)"
