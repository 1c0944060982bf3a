"""--set KEY=VALUE and the refine shortcuts: typed like TOML, validated, recorded in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from grefine_kit.cli import cli
from grefine_kit.errors import UserError
from grefine_kit.recipes.overrides import apply_overrides, parse_assignment, parse_value, shortcut_overrides
from grefine_kit.recipes.recipe import Recipe

EXAMPLE = Path(__file__).resolve().parents[1] / "grefine_kit" / "data" / "example.png"


def test_values_are_read_as_toml_else_text():
    assert parse_value("5") == 5 and isinstance(parse_value("5.0"), float)
    assert parse_value("true") is True and parse_value("[1, 2]") == [1, 2]
    assert parse_value('"5"') == "5" and parse_value("blurry, ugly") == "blurry, ugly"
    assert parse_assignment("stage1.guidance_scale = 5") == ("stage1.guidance_scale", 5)
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_assignment("stage1.guidance_scale")
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_assignment("stage1..x=1")


def test_overrides_change_the_recipe_and_are_kept():
    tiny = Recipe.load("tiny")
    new = apply_overrides(tiny, [("stage1.guidance_scale", 5), ("refiner.iterations", 6), ("seed", 3)])
    assert new.parts["stage1"].options["guidance_scale"] == 5
    assert new.refiner["iterations"] == 6 and new.seed == 3
    assert dict(new.overrides) == {"stage1.guidance_scale": 5, "refiner.iterations": 6, "seed": 3}
    assert new.hash != tiny.hash and new.source == tiny.source
    assert new.build().recipe_overrides == dict(new.overrides)


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        (("stage1.guidnce_scale", 5), "--set stage1.guidnce_scale: .*did you mean 'guidance_scale'"),
        (("stage1.guidance_scale", "high"), "--set stage1.guidance_scale='high': .*guidance_scale"),
        (("refiner.iterations", True), "--set refiner.iterations: .*boolean"),
        (("stage3.steps", 1), "--set stage3.steps: stage3: unknown key"),
        (("indicators.perceptual.model", 3), "--set indicators.perceptual.model"),
    ],
)
def test_wrong_key_or_type_names_the_key(pair: tuple[str, object], expected: str):
    with pytest.raises(UserError, match=expected):
        apply_overrides(Recipe.load("tiny"), [pair])


def test_a_table_the_recipe_lacks_is_an_error():
    recipe = Recipe.load("img2img-baseline")
    with pytest.raises(UserError, match=r"has no \[stage1\] table"):
        apply_overrides(recipe, [("stage1.guidance_scale", 5)])
    assert [k for k, _ in shortcut_overrides(negative_prompt="x", stages=["stage2"])] == [
        "stage2.negative_prompt"
    ]


def test_refine_set_and_shortcuts_reach_the_report(tmp_path: Path):
    result = CliRunner().invoke(
        cli,
        [
            "refine", str(EXAMPLE), "--prompt", "a red house", "--recipe", "tiny", "--out", str(tmp_path),
            "--set", "stage1.guidance_scale=5", "--steps", "6", "--negative-prompt", "blurry",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "example.report.json").read_text())
    assert report["recipe"]["overrides"] == {
        "stage1.guidance_scale": 5,
        "refiner.iterations": 6,
        "stage1.negative_prompt": "blurry",
        "stage2.negative_prompt": "blurry",
    }
    # iterations 6, split 0.5: stage 1 gets a 3-step schedule
    assert report["stage1"]["steps"] == 3


def test_cli_wrong_set_is_exit_2_naming_the_key(tmp_path: Path):
    args = ["refine", str(EXAMPLE), "--prompt", "a", "--recipe", "tiny", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, [*args, "--set", "stage1.guidance_scale=high"])
    assert result.exit_code == 2 and "--set stage1.guidance_scale" in result.stderr
    assert result.stderr.count("\n") == 1
    result = CliRunner().invoke(
        cli,
        ["score", str(EXAMPLE), "--recipe", "tiny", "--out", str(tmp_path / "s"), "--set", "batch_size=0"],
    )
    assert result.exit_code == 2 and "--set batch_size" in result.stderr


def test_score_prints_a_table_and_the_mean(tmp_path: Path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    result = CliRunner().invoke(
        cli, ["score", str(EXAMPLE), str(bad), "--recipe", "tiny", "--out", str(tmp_path / "s"), "--no-maps"]
    )
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["file", "pq-map"]
    name, value = lines[1].split()
    assert name == "example.png" and 0.0 <= float(value) <= 1.0
    assert lines[2].startswith("bad.png") and "failed:" in lines[2]
    assert lines[3] == f"mean pq-map over 1 image(s): {float(value):.4f}"
