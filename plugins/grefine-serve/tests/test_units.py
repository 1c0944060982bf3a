"""grefine-serve's pieces without a server: registration, settings, overrides, upload names,
job expiry and restart recovery."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grefine_serve.catalog import Catalog, check_overrides
from grefine_serve.errors import ApiError
from grefine_serve.jobs import JobStore
from grefine_serve.settings import DEFAULTS, ServeSettings, parse_duration, parse_size
from grefine_serve.uploads import safe_upload_name
from grefine_serve.workers import WorkerPool

from grefine_kit.errors import UserError


def test_entry_point_adds_serve_without_importing_fastapi(plugin_env: dict[str, str]) -> None:
    script = (
        "import sys\n"
        "from grefine_kit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('fastapi', 'uvicorn', 'starlette', 'torch') if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=plugin_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "serve " in done.stdout and "HEAVY:\n" in done.stdout + "\n", done.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "grefine_kit.cli", "serve", "--help"],
        env=plugin_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        helped.returncode == 0 and "--max-pixels" in helped.stdout and "GREFINE_SERVE_TOKEN" in helped.stdout
    )
    bad = subprocess.run(
        [sys.executable, "-m", "grefine_kit.cli", "serve", "--out", "x", "--keep", "soon"],
        env=plugin_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--keep must be a duration" in bad.stderr and "Traceback" not in bad.stderr


def test_parsers() -> None:
    assert (
        parse_duration("90", "x") == 90
        and parse_duration("30m", "x") == 1800
        and parse_duration("1d", "x") == 86400
    )
    assert (
        parse_size("20MB", "x") == 20_000_000
        and parse_size("500k", "x") == 500_000
        and parse_size(7, "x") == 7
    )
    for bad in ("0", "-1s", "soon"):
        with pytest.raises(UserError):
            parse_duration(bad, "--keep")
    with pytest.raises(UserError, match="--queue must be a whole number"):
        ServeSettings(out=Path("x"), queue_size=0)


def test_overrides_and_names() -> None:
    assert check_overrides({"refiner.iterations": 4, "stage1.negative_prompt": "blurry"}) == [
        ("refiner.iterations", 4),
        ("stage1.negative_prompt", "blurry"),
    ]
    for bad in (
        {"stage1.model": "x"},
        {"indicators.alignment.parser": "spacy"},
        {"stage1.cache_dir": "x"},
        {"a.b": {"c": 1}},
        {"a b": 1},
        {"stage1.negative_prompt": "file:///etc/passwd"},
        [1],
    ):
        with pytest.raises(ApiError) as info:
            check_overrides(bad)
        assert info.value.status == 422
    assert (
        safe_upload_name("../../etc/passwd") == "passwd"
        and safe_upload_name("C:\\x\\cat photo.JPG") == "cat_photo.JPG"
    )
    assert safe_upload_name("...") == "upload" and safe_upload_name(None) == "upload"


def test_catalog_serves_only_what_the_operator_allows(tmp_path: Path) -> None:
    catalog = Catalog(ServeSettings(out=tmp_path, recipes=("tiny",)))
    assert catalog.names == ["tiny"] and catalog.default == "tiny"
    with pytest.raises(ApiError, match="unknown recipe 'g-refine'"):
        catalog.resolve("g-refine")
    assert catalog.resolve("tiny", {"refiner.iterations": 3}).refiner["iterations"] == 3
    with pytest.raises(UserError, match="unknown recipe 'tinny'"):
        Catalog(ServeSettings(out=tmp_path, recipes=("tinny",)))
    # the operator's own TOML, read with the CLI's rules; requests name it, never its path
    from grefine_kit.recipes.recipe import Recipe

    own = tmp_path / "mine.toml"
    own.write_text(Recipe.load("tiny").dump().replace('name = "tiny"', 'name = "mine"'))
    catalog = Catalog(
        ServeSettings(out=tmp_path, recipes=("tiny",), recipe_files=(own,), default_recipe="mine")
    )
    assert catalog.names == ["mine", "tiny"] and catalog.resolve(None).name == "mine"
    with pytest.raises(ApiError, match="unknown recipe"):
        catalog.resolve(str(own))


def test_expiry_and_recovery(tmp_path: Path) -> None:
    settings = ServeSettings(out=tmp_path, recipes=("tiny",), keep_seconds=60)
    store = JobStore(tmp_path, settings.keep_seconds)
    done = store.create("score", recipe="tiny", upload="a.png")
    done.status, done.finished = "done", time.time() - 61
    store.add(done)
    running = store.create("refine", recipe="tiny", upload="b.png", prompt="a cat")
    running.status, running.phases = "running", ["perceptual"]
    store.add(running)
    scoring = store.create("score", recipe="tiny", upload="c.png")
    scoring.status = "running"
    store.add(scoring)
    again = JobStore(tmp_path, settings.keep_seconds)  # a restarted server reads the folder
    assert [j.id for j in again.recover()] == [running.id]
    assert again.get(running.id).status == "queued" and again.get(running.id).phases == []  # type: ignore[union-attr]
    assert again.get(scoring.id).error["code"] == "interrupted"  # type: ignore[union-attr,index]
    assert json.loads((scoring.folder / "job.json").read_text())["status"] == "failed"
    pool = WorkerPool(settings, again, Catalog(settings), None)  # type: ignore[arg-type]
    pool.sweep_once()
    assert again.get(done.id) is None and not done.folder.exists()  # expired: gone with its files
    assert again.get(scoring.id) is not None  # finished just now: kept
    pool.sweep_once(now=time.time() + 61)
    assert again.get(scoring.id) is None and running.folder.exists()
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == [running.id]


def test_defaults_are_written_once_for_the_cli_and_the_settings():
    from click.testing import CliRunner
    from grefine_serve.command import serve

    settings = ServeSettings(out=Path("x"))
    assert (settings.host, settings.port) == (DEFAULTS.host, DEFAULTS.port)
    assert (settings.workers, settings.queue_size) == (DEFAULTS.workers, DEFAULTS.queue_size)
    assert settings.max_upload_bytes == parse_size(DEFAULTS.max_upload, "x") == 20_000_000
    assert settings.max_pixels == DEFAULTS.max_pixels
    assert settings.keep_seconds == parse_duration(DEFAULTS.keep, "x") == 24 * 3600
    assert settings.job_timeout == parse_duration(DEFAULTS.job_timeout, "x") == 1800
    assert settings.abandon_after == parse_duration(DEFAULTS.abandon_after, "x") == 600
    shown = " ".join(CliRunner().invoke(serve, ["--help"]).output.split())
    for text in (DEFAULTS.max_upload, DEFAULTS.keep, DEFAULTS.job_timeout, DEFAULTS.abandon_after):
        assert f"[default: {text}]" in shown


def test_a_refine_needs_a_prompt_only_when_its_recipe_reads_one() -> None:
    from grefine_serve.fields import refine_prompt

    from grefine_kit.recipes.recipe import Recipe

    assert refine_prompt(Recipe.load("restore"), None) == ""  # defect-map + classical stages
    assert refine_prompt(Recipe.load("tiny"), "a cat") == "a cat"
    for missing in (None, ""):
        with pytest.raises(ApiError) as caught:
            refine_prompt(Recipe.load("tiny"), missing)  # AQ-Map and diffusion stages read it
        assert caught.value.status == 422 and caught.value.code == "prompt_required"
        assert "'tiny' reads prompts" in caught.value.message
