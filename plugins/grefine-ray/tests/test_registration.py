"""grefine-ray without Ray running: the entry point, a cheap import, option validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grefine_ray
import pytest

from grefine_kit.engines import get_engine
from grefine_kit.errors import UserError
from grefine_kit.testing.engine_check import EchoWork, echo_tasks


def test_entry_point_registers_ray_without_importing_ray(plugin_env: dict[str, str]) -> None:
    script = (
        "import sys\n"
        "import grefine_ray\n"
        "from grefine_kit.parts.registry import get_registry\n"
        "entry = get_registry().get('engine', 'ray')\n"
        "assert entry.target == 'grefine_ray.engine:RayEngine', entry.target\n"
        "assert entry.distribution == 'grefine-ray', entry.distribution\n"
        "assert 'ray' not in sys.modules, 'registering the engine imported ray'\n"
        "engine = get_registry().create('engine', 'ray', {'workers': 3})\n"
        "assert (engine.name, engine.workers) == ('ray', 3)\n"
        "assert 'ray' not in sys.modules, 'building the engine imported ray'\n"
        "print('ok')\n"
    )
    cmd = [sys.executable, "-c", script]
    done = subprocess.run(cmd, env=plugin_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_get_engine_builds_it(register_plugin) -> None:  # type: ignore[no-untyped-def]
    register_plugin(grefine_ray, name="ray", distribution="grefine-ray")
    engine = get_engine("ray", workers=4, address=None)
    assert (engine.name, engine.workers, engine.address) == ("ray", 4, None)
    with pytest.raises(UserError, match="must be a number, not a boolean"):
        get_engine("ray", workers=True)
    with pytest.raises(UserError, match="has no option 'worker'"):
        get_engine("ray", worker=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, "workers must be a whole number of actors, at least 1; got 0"),
        ({"workers": 1.5}, "workers must be a whole number of actors, at least 1; got 1.5"),
        ({"address": ""}, "address must be a Ray address such as 'auto' or 'ray://host:10001'"),
        ({"address": 7}, "address must be a Ray address"),
        ({"cpus_per_worker": 0}, "cpus_per_worker must be a number above 0; got 0"),
        ({"cpus_per_worker": float("nan")}, "cpus_per_worker must be a number above 0; got nan"),
        ({"gpus_per_worker": -1}, "gpus_per_worker must be a number of at least 0"),
        ({"gpus_per_worker": "1"}, "gpus_per_worker must be a number of at least 0"),
        ({"torch_threads": 0}, "torch_threads must be a whole number, at least 1; got 0"),
        ({"torch_threads": True}, "torch_threads must be a whole number, at least 1; got True"),
    ],
)
def test_option_validation(options: dict[str, object], message: str) -> None:
    from grefine_ray.engine import RayEngine

    with pytest.raises(UserError) as info:
        RayEngine(**options)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_defaults_and_name() -> None:
    from grefine_ray.engine import RayEngine

    engine = RayEngine()
    assert (engine.workers, engine.address, engine.cpus_per_worker) == (2, None, 1.0)
    assert (engine.gpus_per_worker, engine.torch_threads, engine.name) == (None, None, "ray")
    assert RayEngine(cpus_per_worker=2, gpus_per_worker=0.5).gpus_per_worker == 0.5


def test_no_tasks_and_non_portable_work_need_no_ray(tmp_path: Path) -> None:
    from grefine_ray.engine import RayEngine

    assert list(RayEngine().run(EchoWork(tmp_path), [], batch_size=2)) == []
    work = EchoWork(tmp_path, portable=False)
    with pytest.raises(UserError, match="the ray engine needs a portable work") as info:
        list(RayEngine().run(work, echo_tasks(2), batch_size=2))
    assert "this echo work is not: use --engine local" in str(info.value)
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        list(RayEngine().run(EchoWork(tmp_path), echo_tasks(2), batch_size=0))


def test_entry_module_list_and_doctor_stay_light() -> None:
    from grefine_kit.testing import check_plugin_light

    check_plugin_light("grefine_ray", distribution="grefine-ray")


def test_ray_chatter_is_dropped_and_real_warnings_kept() -> None:
    """A successful run showed 6 lines of Ray INFO and notices (issue 20, item 17)."""
    import logging

    from grefine_ray.engine import _quiet_ray, _RayChatter

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("ray.data.x", level, __file__, 1, message, None, None)

    chatter = _RayChatter()
    assert not chatter.filter(record(logging.INFO, "Starting execution of Dataset dataset_1"))
    assert not chatter.filter(record(logging.WARNING, "Token authentication is enabled for this cluster"))
    assert not chatter.filter(record(logging.WARNING, "Progress bars disabled. To enable, set ..."))
    assert chatter.filter(record(logging.WARNING, "The actor pool cannot be scheduled: not enough CPUs"))
    assert chatter.filter(record(logging.ERROR, "anything"))
    logger = logging.getLogger("ray.data")
    before = list(logger.filters)
    with _quiet_ray():
        assert any(isinstance(f, _RayChatter) for f in logger.filters)
    assert logger.filters == before
