"""Progress: a run's item-by-item progress report.

:class:`RunProgress` is what the ``score`` and ``refine`` runners, the benchmark's scoring,
``calibrate`` and ``train-pq`` report to, once per finished item (``item``), whatever the
engine's batching. A bar redrawn into a log file or a CI log is noise (hundreds of
carriage-return lines), so the bar shows only on a terminal. Its ``mode`` (``--log-format``,
docs/cli.md):

- ``bar``: a tqdm bar on stderr when stderr is a terminal, nothing otherwise (the library default);
- ``auto``: the bar on a terminal, else one text line per item on stderr (the CLI default);
- ``text``: one text line per item on stderr, terminal or not;
- ``jsonl``: one JSON object per event on stdout (``start``, ``item``, ``end``), and nothing
  else on stdout; the bar still shows when stderr is a terminal;
- ``off``: nothing.

The ETA counts only the items done in this run, from the end of the first one (models load
lazily, during the first item): model loading and items skipped as already done do not skew
it; it shows from the second item on. An item's ``seconds`` is the wall time since the
previous one (the first: since ``planned``, start-up included). The runner calls
``planned`` (after resume checks), ``started`` (workers ready), ``item`` per finished item
and ``close``.
``step(done, total)`` is the hook for progress inside an item (e.g. denoising steps): the bar
shows it; a stage finds the active report with :func:`active_progress`.
"""

from __future__ import annotations

import contextvars
import json
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, Final, Literal, get_args

__all__ = ["LOG_FORMATS", "LogFormat", "RunProgress", "active_progress", "log_mode"]

LogFormat = Literal["bar", "auto", "text", "jsonl", "off"]
LOG_FORMATS: Final = ("auto", "text", "jsonl", "off")  # what --log-format offers
_MODES: Final = frozenset(get_args(LogFormat))
_ACTIVE: contextvars.ContextVar[RunProgress | None] = contextvars.ContextVar("grefine_progress", default=None)


def log_mode(mode: bool | str) -> str:
    """``mode`` as a :data:`LogFormat` name: ``True`` is ``"bar"``, ``False`` is ``"off"``;
    ``ValueError`` for a name that is none of them."""
    name = "bar" if mode is True else "off" if mode is False else mode
    if name not in _MODES:
        raise ValueError(f"unknown progress mode {name!r}; choose one of {', '.join(sorted(_MODES))}")
    return str(name)


def _isatty(stream: IO[str] | None) -> bool:
    return stream is not None and stream.isatty()


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def active_progress() -> RunProgress | None:
    """The report of the run going on in this thread (None outside a run)."""
    return _ACTIVE.get()


class RunProgress:
    """Item-by-item progress of one run of ``total`` items (``kind``: ``refine``/``score``).

    ``mode``: ``True`` is ``"bar"``, ``False`` is ``"off"`` (module docstring). ``out`` /
    ``err``: the streams for JSON lines and text lines (default: ``sys.stdout`` /
    ``sys.stderr`` at construction). ``clock``: seconds, for tests.
    """

    def __init__(
        self,
        kind: str,
        total: int,
        *,
        mode: bool | str = True,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        clock: Any = time.perf_counter,
    ) -> None:
        self.kind, self.total, self.mode = kind, int(total), log_mode(mode)
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self._clock = clock
        self.n_skipped = self.n_ok = self.n_failed = 0
        self._since = self._last = clock()
        self._first: float | None = None  # when this run's first item finished
        self._bar: Any = None
        terminal = _isatty(self.err)
        self.lines = self.mode == "text" or (self.mode == "auto" and not terminal)
        self.json = self.mode == "jsonl"
        self._wants_bar = self.mode in ("bar", "auto", "jsonl") and terminal

    # -- what the runner reports --------------------------------------------------------------

    def planned(self, n_skipped: int, *, loading: bool = True) -> None:
        """The run is planned: ``n_skipped`` items were already done (resume; counted, not
        timed); the workers load next (a bar appears now, a text line says what is to do and,
        with ``loading``, that models load: false where they are loaded already)."""
        self.n_skipped = max(0, int(n_skipped))
        self._since = self._last = self._clock()
        todo = self.total - self.n_skipped
        if self._wants_bar and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total, initial=self.n_skipped, unit="img", desc=self.kind, file=self.err
            )
            self._bar.set_postfix_str("loading models" if loading else "")
        if self.json:
            start = {"event": "start", "kind": self.kind, "total": self.total}
            self._emit({**start, "skipped": self.n_skipped, "todo": todo})
        elif self.lines:
            done = f", {self.n_skipped} already done" if self.n_skipped else ""
            models = "; loading models" if todo and loading else ""
            self._say(f"{self.kind}: {todo} item(s) to do{done}{models}")

    def started(self) -> None:
        """The workers are ready (some engines say so with their first record): the bar's
        clock restarts. The first item's ``seconds`` still count from ``planned``: they
        include the start-up, which is the honest figure for it."""
        if self._bar is not None:
            self._bar.reset()  # tqdm's clock restarts; initial: its rate counts only new items
            self._bar.initial = self._bar.n = self._bar.last_print_n = self.n_skipped
            self._bar.set_postfix_str("")

    def item(self, record: Mapping[str, Any]) -> None:
        """One item finished (its record as appended to ``reports.jsonl``; a training epoch's
        has ``loss``, shown in place of ``ok`` and passed on in the JSON event)."""
        now = self._clock()
        seconds, self._last = now - self._last, now
        if self._first is None:
            self._first = now
        ok = record.get("status") == "ok"
        self.n_ok, self.n_failed = self.n_ok + ok, self.n_failed + (not ok)
        done = self.n_ok + self.n_failed + self.n_skipped
        eta = self.eta(now)
        loss = record.get("loss")
        if self._bar is not None:
            self._bar.update(1)
            if loss is None:
                self._bar.set_postfix(failed=self.n_failed, refresh=False)
            else:
                self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        name = str(record.get("file") or record.get("id") or "?")
        if self.json:
            event: dict[str, Any] = {
                "event": "item",
                "kind": self.kind,
                "id": record.get("id"),
                "file": name,
                "status": "ok" if ok else "error",
                "done": done,
                "total": self.total,
                "seconds": round(seconds, 3),
                "eta_s": None if eta is None else round(eta, 1),
            }
            if not ok:
                event["error"] = record.get("error")
            for key in ("score", "loss"):
                if record.get(key) is not None:
                    event[key] = record[key]
            self._emit(event)
        elif self.lines:
            width = len(str(self.total))
            what = f"loss {loss:.4f}" if loss is not None else "ok"
            what = what if ok else f"error: {record.get('error', 'unknown error')}"
            left = f", ETA {_clock(eta)}" if eta is not None and done < self.total else ""
            self._say(f"{self.kind} [{done:>{width}}/{self.total}] {name}: {what} ({seconds:.1f} s{left})")

    def step(self, done: int, total: int) -> None:
        """Progress inside the current item (``done`` of ``total``, e.g. denoising steps)."""
        if self._bar is not None and total > 0:
            self._bar.set_postfix(step=f"{done}/{total}", failed=self.n_failed)

    def close(self) -> None:
        """The run ended (normally or not)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.json:
            self._emit(
                {
                    "event": "end",
                    "kind": self.kind,
                    "ok": self.n_ok,
                    "failed": self.n_failed,
                    "skipped": self.n_skipped,
                    "seconds": round(self._clock() - self._since, 3),
                }
            )

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at this run's rate since its first item (None before the second item:
        the first one also pays for loading the models, which parts do lazily)."""
        n = self.n_ok + self.n_failed
        if n < 2 or self._first is None:
            return None
        elapsed = (self._clock() if now is None else now) - self._first
        return elapsed / (n - 1) * max(0, self.total - self.n_skipped - n)

    @contextmanager
    def active(self) -> Iterator[RunProgress]:
        """Make this the report :func:`active_progress` returns, for the ``with`` block."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    # -- output -------------------------------------------------------------------------------

    def _say(self, line: str) -> None:
        self.err.write(line.replace("\n", " ").replace("\r", " ") + "\n")
        self.err.flush()

    def _emit(self, event: Mapping[str, Any]) -> None:
        self.out.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
        self.out.flush()
