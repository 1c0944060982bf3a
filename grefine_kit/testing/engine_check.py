"""The engine conformance check (``check_engine``) and the picklable toy work it runs.

The toy work needs no model: each task's "output" is a text file holding the item's id and
prompt, written atomically by the worker; items whose prompt is ``"bad"`` become error
records; a prompt ``"setup"`` makes the worker raise a ``SetupError`` (every item would).
Everything here is top-level and picklable, so engines that run workers in other processes
(Ray actors) are checked the same way as the local engine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.engines.base import Task
from grefine_kit.errors import SetupError
from grefine_kit.runs import atomic
from grefine_kit.runs.items import Item

__all__ = ["EchoWork", "EchoWorker", "check_engine", "echo_tasks"]


@attrs.define
class EchoWorker:
    """Writes ``<stem>.txt`` = ``"<id>|<prompt>|<pid>"`` per task; see the module docstring."""

    out_dir: Path

    def process(self, tasks: Sequence[Task]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for task in tasks:
            if task.item.prompt == "setup":
                raise SetupError("toy setup error: every item would fail")
            if task.item.prompt == "bad":
                records.append({"id": task.item.id, "status": "error", "error": "toy per-item error"})
                continue
            name = f"{task.stem}.txt"
            atomic.write_text(self.out_dir / name, f"{task.item.id}|{task.item.prompt}")
            records.append(
                {
                    "id": task.item.id,
                    "status": "ok",
                    "outputs": [name],
                    "pid": os.getpid(),
                    "batch": len(tasks),
                }
            )
        return records


@attrs.define
class EchoWork:
    """Toy :class:`~grefine_kit.engines.base.Work` (portable: plain attributes only)."""

    out_dir: Path
    kind: str = "echo"
    portable: bool = True

    def open(self) -> EchoWorker:
        return EchoWorker(self.out_dir)


def echo_tasks(n: int, *, bad: Sequence[int] = (), setup: Sequence[int] = ()) -> list[Task]:
    """``n`` toy tasks ``item-000``...; the ``bad`` ones fail, a ``setup`` one raises."""
    tasks = []
    for i in range(n):
        prompt = "bad" if i in bad else "setup" if i in setup else f"prompt {i}"
        tasks.append(
            Task(Item(id=f"item-{i:03d}", image=Path(f"/nonexistent/{i}.png"), prompt=prompt), f"s{i:03d}")
        )
    return tasks


def check_engine(engine: Any, tmp_dir: str | os.PathLike[str], *, n: int = 11, batch_size: int = 3) -> None:
    """Check ``engine`` against the engine contract (``grefine_kit.engines.base.Engine``):

    every task's record comes out exactly once (any order) with its outputs complete, error
    records pass through, an empty task list yields nothing, ``on_start`` is called, and a
    worker's ``SetupError`` reaches the caller as a ``UserError``. ``tmp_dir``: an empty folder.
    """
    from grefine_kit.engines.base import Engine
    from grefine_kit.errors import UserError

    out = Path(tmp_dir)
    assert isinstance(engine, Engine), "an engine needs a `name` and a `run` method"
    assert isinstance(engine.name, str), "an engine needs a str `name`"
    assert list(engine.run(EchoWork(out), [], batch_size=batch_size)) == [], "no tasks: no records"
    started: list[bool] = []
    tasks = echo_tasks(n, bad=(1,))
    records = list(
        engine.run(EchoWork(out), tasks, batch_size=batch_size, on_start=lambda: started.append(True))
    )
    assert started == [True], "on_start must be called once, when the workers are ready"
    ids = [r.get("id") for r in records]
    assert sorted(map(str, ids)) == sorted(t.item.id for t in tasks), (
        f"every task's record exactly once; got ids {ids}"
    )
    by_id = {r["id"]: r for r in records}
    assert by_id["item-001"]["status"] == "error", "a worker's error record must pass through"
    for t in tasks:
        if t.item.id == "item-001":
            continue
        rec = by_id[t.item.id]
        assert rec["status"] == "ok", rec
        text = (out / f"{t.stem}.txt").read_text()
        assert text == f"{t.item.id}|{t.item.prompt}", f"output of {t.item.id} incomplete: {text!r}"
        assert rec.get("batch", 0) <= batch_size, "a batch must not exceed batch_size"
    try:
        list(engine.run(EchoWork(out), echo_tasks(4, setup=(2,)), batch_size=1))
    except UserError as exc:
        assert "toy setup error" in str(exc), f"the worker's message must reach the caller: {exc}"
    else:
        raise AssertionError("a worker's SetupError must stop the run as a UserError")
