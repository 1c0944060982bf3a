"""The comparison recipes g-refine-reference and g-refine-paper: they validate and run end to end on
tiny random-weight models swapped in with --set (the recipes name real weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.recipes.recipe import Recipe

pytest.importorskip("spacy")

TINY = [
    "indicators.perceptual.model=grefine-tiny",
    "indicators.perceptual.weights=random",
    "indicators.perceptual.device=cpu",
    # the bundled learned prompts fit ViT-B/16's text tower only
    'indicators.perceptual.prompt_checkpoints="zero-shot"',
    "indicators.alignment.model=grefine-tiny",
    "indicators.alignment.weights=random",
    "indicators.alignment.device=cpu",
    "stage1.model=tiny",
    "stage1.device=cpu",
    "stage1.dtype=float32",
    "stage2.model=tiny",
    "stage2.device=cpu",
    "stage2.dtype=float32",
    "refiner.iterations=4",
    "combiner.threshold=0.0",  # random weights: make sure stage 1 has a mask to work on
]


@pytest.mark.parametrize("name", ["g-refine-reference", "g-refine-paper"])
def test_recipe_validates_and_round_trips(name: str):
    recipe = Recipe.load(name)
    recipe.validate()
    assert Recipe.loads(recipe.dump()).to_dict() == recipe.to_dict()


def test_paper_and_reference_choices_are_in_the_recipes():
    paper = Recipe.load("g-refine-paper").to_dict()
    assert paper["indicators"]["alignment"]["ancestor_rule"] == "noun-ancestor"
    assert paper["indicators"]["alignment"]["defect_rule"] == "product"
    assert paper["stage1"]["step_rule"] == paper["stage2"]["step_rule"] == "denoising"
    assert paper["refiner"]["strength_rule"] == "paper"
    ref = Recipe.load("g-refine-reference").to_dict()
    assert ref["indicators"]["perceptual"]["reference_compat"] is True
    assert ref["indicators"]["alignment"]["reference_compat"] is True
    ours = Recipe.load("g-refine").to_dict()
    assert "reference_compat" not in ours["indicators"]["alignment"]


@pytest.mark.parametrize("name", ["g-refine-reference", "g-refine-paper"])
def test_recipe_runs_end_to_end_on_tiny_models(name: str, tmp_path: Path):
    image = tmp_path / "in.png"
    yy, xx = np.mgrid[0:48, 0:64]
    Image.fromarray(np.stack([xx * 4, yy * 5, np.full_like(xx, 90)], -1).astype(np.uint8)).save(image)
    args = ["refine", str(image), "--recipe", name, "--prompt", "a red house with a blue door"]
    for item in TINY:
        args += ["--set", item]
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "in.report.json").read_text())
    assert Image.open(out / "in.png").size == (64, 48)
    text = json.dumps(report)
    assert "stage1" in text and "stage2" in text
    if name == "g-refine-paper":
        # eq. 10: each stage runs exactly its n = 4 / 2 denoising steps
        stages = _stage_entries(report)
        assert [s["steps_run"] for s in stages if not s.get("skipped")] == [2] * len(
            [s for s in stages if not s.get("skipped")]
        )
        assert any(not s.get("skipped") for s in stages)


def _stage_entries(report: dict) -> list[dict]:
    found: list[dict] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "steps_run" in node and "strength" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(report)
    return found
