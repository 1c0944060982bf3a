"""CLI behaviour: user errors are one line and exit 2; listing and recipes work."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from grefine_kit.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version_and_help():
    code, out, _ = run("--version")
    assert code == 0 and "grefine, version 0.1.0" in out
    code, out, _ = run("--help")
    assert code == 0 and "refine" in out and "score" in out


def test_list_filters_by_kind_and_glob():
    code, out, _ = run("list", "combiner", "--filter", "g-*")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines and all(line.startswith("combiner   g-") for line in lines), out
    code, _, err = run("list", "combiners")
    assert code == 2 and "did you mean 'combiner'" in err


GOOD = """
name = "mine"
[indicators.perceptual]
part = "pq-map"
model = "grefine-tiny"
weights = "random"
[combiner]
part = "perceptual"
threshold = 0.4
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("[combiner]", "[combiner]\ntreshold = 0.1"),
            "no option 'treshold' (did you mean 'threshold'?)",
        ),
        (
            GOOD.replace('part = "pq-map"', 'part = "pq-mpa"'),
            "indicators.perceptual.part: unknown indicator 'pq-mpa' (did you mean 'pq-map'?)",
        ),
        (GOOD.replace("threshold = 0.4", 'threshold = "high"'), "threshold"),
        (GOOD.replace("threshold = 0.4", "threshold = 7.0"), "threshold"),
        ("sed = 3\n" + GOOD, "sed: unknown key (did you mean 'seed'?)"),
        (GOOD.replace("[indicators.perceptual]", "[indicators.perceptive]"), "did you mean 'perceptual'"),
        ("name = 'x'\n[combiner\n", "not valid TOML"),
        (
            "name = 'x'\n[stage1]\npart = 'inpaint'\n",
            "stage1 (inpaint) reads 'mask', which no earlier block writes; add a [combiner] table",
        ),
        (GOOD.replace('name = "mine"', "name = 3"), "name: required, a non-empty string"),
        (GOOD.replace("threshold = 0.4", "threshold = true"), "'threshold' must be a number, not a boolean"),
        (GOOD + "[refiner]\ndelta = true\n", "refiner: 'delta' must be a number, not a boolean"),
        (GOOD + "[refiner]\niterations = true\n", "refiner: 'iterations' must be a number, not a boolean"),
        (GOOD + '[refiner]\niterations = "20"\n', "'iterations' must be an integer (got '20', text)"),
        (GOOD + "[refiner]\nbatch_size = 9223372036854775807\n", "'batch_size' must be <= 1024"),
        (GOOD + "[stage1]\npart = 'inpaint'\nresolution = 1000000000\n", "'resolution' must be <= 8192"),
        (GOOD + "[stage1]\npart = 'inpaint'\nguidance_scale = inf\n", "must be a finite number"),
        (GOOD + "[stage2]\npart = 'img2img'\nresolution = false\n", "'resolution' must be a number"),
        ("name = 'x'\n[regions]\npart = 'components'\n", "regions (components) reads 'mask'"),
        (GOOD + "[refiner]\nonly_masked = true\n", "refiner.only_masked: replaced by a [regions] table"),
        (GOOD + "[regions]\npart = 'components'\nmerge = 'all'\n", "'merge' must be in"),
    ],
    ids=[
        "misspelled-option",
        "unknown-part",
        "wrong-type",
        "out-of-range",
        "misspelled-top-key",
        "unknown-role",
        "bad-toml",
        "missing-combiner",
        "name-type",
        "bool-for-float",
        "bool-refiner-float",
        "bool-refiner-int",
        "string-for-int",
        "huge-batch",
        "huge-resolution",
        "inf-guidance",
        "bool-stage-int",
        "regions-without-combiner",
        "old-only-masked",
        "bad-merge-mode",
    ],
)
def test_bad_recipes_exit_2_with_one_line(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    code, out, err = run("recipe", "validate", str(path))
    assert code == 2, (out, err)
    assert expected in err
    assert str(path) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "Attribute(" not in err  # attrs' TypeError args are a tuple: only the message is shown


def test_good_recipe_validates_and_round_trips(tmp_path: Path):
    from grefine_kit.recipes.recipe import Recipe

    path = tmp_path / "recipe.toml"
    path.write_text(GOOD)
    code, out, err = run("recipe", "validate", str(path))
    assert code == 0, err
    assert "ok: mine" in out
    recipe = Recipe.load(path)
    again = Recipe.loads(recipe.dump())
    assert again.to_dict() == recipe.to_dict()
    assert again == recipe  # the source (a path vs "<string>") is provenance, not content
    assert again.hash == recipe.hash


def test_missing_files_and_unknown_recipe_are_user_errors(tmp_path: Path):
    code, _, err = run("recipe", "show", str(tmp_path / "nope.toml"))
    assert code == 2 and "no such recipe file" in err
    code, _, err = run("recipe", "show", "g-refin")
    assert code == 2 and "did you mean 'g-refine'" in err
    code, _, err = run("score", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o"))
    assert code == 2 and "missing.png" in err and "Traceback" not in err
    code, _, err = run("refine", str(tmp_path), "--out", str(tmp_path / "o"))
    assert code == 2 and "--prompt" in err


def test_refine_asks_for_a_prompt_only_when_the_recipe_reads_one(tmp_path: Path):
    """`restore` (defect-map + classical stages) reads no prompt: an image without one is
    refined with the empty prompt; a recipe whose parts read prompts (diffusion stages, AQ-Map)
    still stops with one line before any work."""
    import json

    import numpy as np
    from PIL import Image

    from grefine_kit.recipes.recipe import Recipe

    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(image)
    code, _, err = run("refine", str(image), "--recipe", "restore", "--out", str(tmp_path / "r"))
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "r" / "reports.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok"] and records[0]["prompt"] == ""
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,image\none,a.png\n")
    out = str(tmp_path / "o")
    code, _, err = run("refine", "--manifest", str(manifest), "--recipe", "restore", "--out", out)
    assert code == 0, err
    code, _, err = run("refine", str(image), "--recipe", "tiny", "--out", str(tmp_path / "t"))
    assert code == 2 and "reads prompts" in err and "--prompt TEXT" in err
    assert not (tmp_path / "t").exists()
    assert Recipe.load("g-refine").build().needs_prompt  # AQ-Map and both diffusion stages
    assert not Recipe.load("restore").build().needs_prompt


def test_the_python_api_asks_for_a_prompt_only_when_the_recipe_reads_one():
    """``grefine_kit.refine`` follows the CLI's rule: ``restore`` takes the image alone (and
    gives what it gives with the empty prompt); ``tiny`` without a prompt raises ``UserError``."""
    import numpy as np
    from PIL import Image
    from skimage import data

    import grefine_kit
    from grefine_kit.errors import UserError

    rgb = np.asarray(Image.fromarray(data.astronaut()).resize((128, 128)), np.float64)
    rgb[32:80, 32:80] += np.random.default_rng(0).normal(0.0, 25.0, (48, 48, 3))  # a noisy patch
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    alone = grefine_kit.refine(image, recipe="restore")
    empty = grefine_kit.refine(image, "", recipe="restore")
    assert np.array_equal(np.asarray(alone.image), np.asarray(empty.image))
    assert np.array_equal(alone.mask.binary, empty.mask.binary) and alone.mask.binary.any()
    with pytest.raises(UserError, match="reads prompts"):
        grefine_kit.refine(image, recipe="tiny")
    # the same rule one level down: Refiner.refine / refine_many
    from grefine_kit.recipes.recipe import Recipe

    direct = Recipe.load("restore").build().refine(image)
    assert np.array_equal(np.asarray(direct.image), np.asarray(alone.image))
    tiny = Recipe.load("tiny").build()
    with pytest.raises(UserError, match="img-7: the recipe reads prompts"):
        next(tiny.refine_many([(image, None, "img-7")]))
