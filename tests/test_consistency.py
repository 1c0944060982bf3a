"""Paths in a recipe are relative to the recipe file; train-pq prints absolute paths; bars only
on a terminal."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.recipes.recipe import Recipe

RECIPE = """
name = "mine"
[indicators.perceptual]
part = "pq-map"
model = "grefine-tiny"
weights = "random"
prompt_checkpoints = ["ck/overall.pth", "ck/technical.pth", "ck/rationality.pth", "ck/naturalness.pth"]
[combiner]
part = "perceptual"
[stage2]
part = "img2img"
model = "stabilityai/stable-diffusion-xl-refiner-1.0"
config = "./configs/refiner"
"""


def test_recipe_paths_resolve_against_the_recipe_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "mine.toml").write_text(RECIPE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = Recipe.load("../recipes/mine.toml")
    perceptual, stage2 = recipe.parts["perceptual"], recipe.parts["stage2"]
    paths = perceptual.options["prompt_checkpoints"]
    assert paths[0] == str(folder.resolve() / "ck" / "overall.pth") and len(paths) == 4
    assert stage2.options["config"] == str(folder.resolve() / "configs" / "refiner")
    # a hub id is not a path, and built-in recipes are not rewritten
    assert stage2.options["model"] == "stabilityai/stable-diffusion-xl-refiner-1.0"
    assert Recipe.load("g-refine").parts["perceptual"].options["prompt_checkpoints"] == "g-refine"


def test_train_pq_prints_absolute_paths_that_work_from_a_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        pixels = np.clip(rng.normal(30 + 30 * i, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{1 + i / 2}\n")
    (tmp_path / "db.csv").write_text("image,mos\n" + "".join(rows))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["train-pq", "db.csv", "--recipe", "tiny", "--epochs", "2", "--out", "ck"]
    )
    assert result.exit_code == 0, result.output
    line = result.stdout.splitlines()[-1]
    printed = re.findall(r'"([^"]+)"', line)
    assert len(printed) == 4 and all(Path(p).is_absolute() and Path(p).is_file() for p in printed), line
    # the same files named relative to a recipe in a sub folder, used from yet another folder
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.toml").write_text(RECIPE.replace('"ck/', '"../ck/'))
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    result = CliRunner().invoke(
        cli, ["score", "../0.png", "--recipe", "../sub/mine.toml", "--out", "s", "--no-maps"]
    )
    assert result.exit_code == 0, result.output
