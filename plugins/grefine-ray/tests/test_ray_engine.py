"""The ray engine on a local Ray (2 CPUs, started once for this module): the engine
conformance check, errors crossing from the actors, and a refine run byte-identical to the
local engine's."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from grefine_kit.engines.base import Task
from grefine_kit.errors import MissingDependencyError, SetupError
from grefine_kit.testing.engine_check import EchoWork, EchoWorker, check_engine, echo_tasks

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray for the whole module (starting one costs seconds)."""
    ray.init(num_cpus=2, include_dashboard=False)
    # the works below live in this test module, which the actors cannot import: ship by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()


@attrs.define
class NoWeightsWork:
    """A work whose worker cannot open (as with missing weights)."""

    out_dir: Path
    kind: str = "refine"
    portable: bool = True

    def open(self) -> EchoWorker:
        raise MissingDependencyError("no weights for 'toy': run grefine fetch-weights")


@attrs.define
class CrashingWorker:
    def process(self, tasks: Sequence[Task]) -> list[dict[str, Any]]:
        raise RuntimeError("boom\nsecond line")


@attrs.define
class CrashingWork:
    out_dir: Path
    kind: str = "refine"
    portable: bool = True

    def open(self) -> CrashingWorker:
        return CrashingWorker()


def test_check_engine(tmp_path: Path) -> None:
    from grefine_ray.engine import RayEngine

    check_engine(RayEngine(workers=2, torch_threads=1), tmp_path)
    assert ray.is_initialized(), "the caller's Ray must stay up"


def test_user_error_keeps_its_class_and_message(tmp_path: Path) -> None:
    from grefine_ray.engine import RayEngine

    with pytest.raises(MissingDependencyError) as info:
        list(RayEngine(workers=1).run(NoWeightsWork(tmp_path), echo_tasks(3), batch_size=2))
    assert str(info.value) == "no weights for 'toy': run grefine fetch-weights"


def test_other_worker_failure_is_one_line_setup_error(tmp_path: Path) -> None:
    from grefine_ray.engine import RayEngine

    with pytest.raises(SetupError) as info:
        list(RayEngine(workers=1).run(CrashingWork(tmp_path), echo_tasks(2), batch_size=2))
    assert str(info.value) == "the ray engine's worker failed: RuntimeError: boom second line"
    assert type(info.value) is SetupError


def test_one_open_per_actor(tmp_path: Path) -> None:
    from grefine_ray.engine import RayEngine

    records = list(RayEngine(workers=2).run(EchoWork(tmp_path), echo_tasks(12), batch_size=2))
    assert sorted(r["id"] for r in records) == [f"item-{i:03d}" for i in range(12)]
    assert {r["batch"] for r in records} <= {1, 2}
    assert len({r["pid"] for r in records}) <= 2, "at most `workers` actor processes"
