"""The ray engine on a local Ray (2 CPUs, started once for this module): the engine
conformance check, errors crossing from the actors, and a refine run byte-identical to the
local engine's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import torch
from PIL import Image

from grefine_kit.engines.base import Task, TaskWorker
from grefine_kit.errors import MissingDependencyError, SetupError
from grefine_kit.testing.engine_check import EchoWorker, check_engine, echo_tasks

ray = pytest.importorskip("ray")

# Ray Data's own DataContext copy warns about its deprecated fields: not ours
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray for the whole module (starting one costs seconds)."""
    # Ray gives each worker OMP_NUM_THREADS = its CPUs (1) only when the variable is not set
    # already: a developer's OMP_NUM_THREADS would reach the actors (and the CLI's, which
    # connect to this Ray) and change their float arithmetic; the raylet inherits our env now
    saved = os.environ.pop("OMP_NUM_THREADS", None)
    try:
        ray.init(num_cpus=2, include_dashboard=False)
    finally:
        if saved is not None:
            os.environ["OMP_NUM_THREADS"] = saved
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
class CrashingWorker(TaskWorker):
    def process_each(self, tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
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


TIMING_KEYS = frozenset({"seconds", "seconds_total", "timings"})


def _untimed(value: Any) -> Any:
    """``value`` without its timing fields (wall times differ from run to run)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _records(out: Path) -> dict[str, Any]:
    lines = (out / "reports.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len({r["id"] for r in records}) == len(records), "one record per item"
    return {r["id"]: _untimed(r) for r in records}


def _png_npy(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in {".png", ".npy"})


def test_refine_through_ray_is_byte_identical_to_local(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    from grefine_ray.engine import RayEngine

    from grefine_kit.engines.local import LocalEngine
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.runner.options import RunOptions
    from grefine_kit.runner.refine import refine_items
    from grefine_kit.runs.items import make_items

    rng = np.random.default_rng(7)
    inputs = tmp_path / "in"
    inputs.mkdir()
    paths = []
    for i in range(4):
        paths.append(inputs / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), "RGB").save(paths[-1])
    items = make_items(paths, "a cat on a red sofa")
    recipe = Recipe.load("tiny")
    options = RunOptions(save_maps=True, progress=False, batch_size=2)

    def refine(out: Path, engine: Any) -> Any:
        return refine_items(items, recipe, out, attrs.evolve(options, engine=engine))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the actors run with torch_threads=1: same arithmetic
    try:
        local = refine(tmp_path / "local", LocalEngine())
    finally:
        torch.set_num_threads(threads)
    engine = RayEngine(workers=2, torch_threads=1)
    done = refine(tmp_path / "ray", engine)
    assert (local.n_ok, done.n_ok, done.n_failed, done.n_skipped) == (4, 4, 0, 0)

    files = _png_npy(tmp_path / "local")
    assert len(files) == 4 * 6  # image, mask, 2 heatmaps, 2 raw maps per item
    assert files == _png_npy(tmp_path / "ray")
    for name in files:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert _records(tmp_path / "ray") == _records(tmp_path / "local")
    for report in (tmp_path / "local").glob("*.report.json"):
        ours = json.loads((tmp_path / "ray" / report.name).read_text())
        assert _untimed(ours) == _untimed(json.loads(report.read_text())), report.name

    again = refine(tmp_path / "ray", engine)
    assert (again.n_ok, again.n_failed, again.n_skipped) == (0, 0, 4)

    # the CLI path, connecting to this module's Ray (--address auto); Ray gives each actor
    # OMP_NUM_THREADS=1 (one CPU each), so torch runs one thread there too: the same bytes
    cmd = [sys.executable, "-m", "grefine_kit.cli", "refine", str(inputs), "--prompt", "a cat on a red sofa"]
    cmd += ["--recipe", "tiny", "--out", str(tmp_path / "cli"), "--maps", "--batch-size", "2"]
    cmd += ["--engine", "ray", "--workers", "2", "--address", "auto"]
    cli = subprocess.run(cmd, env=plugin_env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert _png_npy(tmp_path / "cli") == files
    for name in files:
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert _records(tmp_path / "cli") == _records(tmp_path / "local")

    # grefine benchmark refines each recipe through the engine too: the same images and scores
    bench = [sys.executable, "-m", "grefine_kit.cli", "benchmark", str(inputs), "--recipe", "restore"]
    bench += ["--metric", "piqe", "--log-format", "off"]
    runs = {
        "bench-local": [],
        "bench-ray": ["--engine", "ray", "--workers", "2", "--address", "auto"],
    }
    for name, extra in runs.items():
        run = subprocess.run(
            [*bench, "--out", str(tmp_path / name), *extra],
            env=plugin_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
    for i in range(4):
        png = f"restore/img{i}.png"
        assert (tmp_path / "bench-ray" / png).read_bytes() == (tmp_path / "bench-local" / png).read_bytes()
    rows = [json.loads((tmp_path / n / "summary.json").read_text())["rows"] for n in runs]
    assert rows[0] == rows[1]


def test_score_from_a_spec_through_ray_matches_local(tmp_path: Path) -> None:
    """The score work carries an IndicatorSpec: the actors build their own indicator from it."""
    from grefine_ray.engine import RayEngine

    from grefine_kit.engines.local import LocalEngine
    from grefine_kit.runner.score import IndicatorSpec, score_files

    rng = np.random.default_rng(3)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, (20, 28, 3), dtype=np.uint8), "RGB").save(paths[-1])
    spec = IndicatorSpec("pq-map", recipe="tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the actors run with torch_threads=1: same arithmetic
    try:
        local = score_files(paths, spec, tmp_path / "local", progress=False, engine=LocalEngine())
    finally:
        torch.set_num_threads(threads)
    remote = score_files(
        paths, spec, tmp_path / "ray", progress=False, engine=RayEngine(workers=1, torch_threads=1)
    )
    assert (local.n_ok, remote.n_ok, remote.n_failed) == (3, 3, 0)
    assert (tmp_path / "ray" / "results.csv").read_text() == (tmp_path / "local" / "results.csv").read_text()
    assert _records(tmp_path / "ray") == _records(tmp_path / "local")  # fingerprints included
