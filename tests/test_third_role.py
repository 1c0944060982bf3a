"""A third map role and a third stage, added by a plugin and a recipe alone (issue 21).

The plugin lives in ``tests/third_role`` and is registered through a real ``grefine_kit``
entry point: the test writes its ``dist-info`` (``METADATA`` + ``entry_points.txt``) into
``tmp_path`` and puts that folder on ``sys.path``, so ``importlib.metadata`` finds it like an
installed distribution. No file of the core names the plugin's parts or the recipe's roles.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grefine_kit.errors import RecipeError
from grefine_kit.parts.registry import Registry, reset_registry
from grefine_kit.recipes.recipe import Recipe
from grefine_kit.refiner.strength import strength_for
from grefine_kit.stages.base import StageRequest

PLUGIN_HOME = Path(__file__).parent / "third_role"

TINY_INDICATORS = """
[indicators.perceptual]
part = "pq-map"
model = "grefine-tiny"
weights = "random"
device = "cpu"

[indicators.alignment]
part = "aq-map"
model = "grefine-tiny"
weights = "random"
device = "cpu"
parser = "rules"
"""

#: the built-in roles plus a third map role (edges) and a third stage (polish)
THIRD = f"""
name = "third-role"
seed = 3
{TINY_INDICATORS}
[indicators.edges]
part = "edge-map"
scale = 6.0

[combiner]
part = "g-refine"

[stage1]
part = "restore"

[stage2]
part = "restore"

[stages.polish]
part = "soften"

[refiner]
iterations = 8
delta = 0.5
"""


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """The registry with the test plugin installed through its entry point (also the process
    registry, for the CLI)."""
    dist = tmp_path / "site" / "grefine_third_role-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: grefine-third-role\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text("[grefine_kit]\nthird = grefine_third_role\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(PLUGIN_HOME))
    from grefine_kit.parts import registry as registry_module

    previous = registry_module._registry
    reset_registry(None)
    try:
        found = Registry.from_plugins()
        assert not found.failures, found.failures
        reset_registry(found)
        yield found
    finally:
        sys.modules.pop("grefine_third_role", None)
        reset_registry(previous)


def _image() -> Image.Image:
    yy, xx = np.mgrid[0:40, 0:48]
    pixels = np.stack([xx * 5, yy * 6, np.full((40, 48), 120)], -1).astype(np.uint8)
    pixels[12:26, 14:30] = np.random.default_rng(1).integers(0, 256, (14, 16, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_the_recipe_alone_adds_a_third_map_role_and_a_third_stage(registry: Registry) -> None:
    recipe = Recipe.loads(THIRD, registry=registry)
    names = [r.name for r in recipe.roles]
    assert names == ["perceptual", "alignment", "edges", "combiner", "stage1", "stage2", "polish"]
    assert Recipe.loads(recipe.dump(), registry=registry) == recipe
    assert "[indicators.edges]" in recipe.dump() and "[stages.polish]" in recipe.dump()

    refiner = recipe.build(registry)
    image = _image()
    result = refiner.refine(image, "a red ball", "ball")
    report = result.report
    # the third map: its score in the report, its map among the results
    from grefine_third_role import EdgeMap, _soften  # the plugin is importable once installed

    expected = EdgeMap(scale=6.0).score([image])[0]
    assert report["scores"]["edges"] == pytest.approx(expected.score)
    assert set(report["scores"]) == {"perceptual", "alignment", "edges"}
    np.testing.assert_array_equal(result.maps["edges"].map, expected.map)
    assert report["maps"]["edges"]["score"] == pytest.approx(expected.score)
    # the third stage: its entry, after stage 2, with the global policy (strength delta)
    assert report["blocks"][-1] == "polish (soften)" and report["blocks"][2] == "edges (edge-map)"
    assert report["polish"]["strength"] == 0.5 and report["polish"]["steps"] == 4
    assert report["polish"]["steps_run"] == 2 and report["polish"]["skipped"] is None
    assert {"edges", "polish", "stage1", "stage2"} <= set(report["timings"])
    assert result.mask.binary.shape == (40, 48) and result.image.size == image.size

    # it ran last, on stage 2's output: the same recipe without it, then the plugin's pass
    without = Recipe.loads(THIRD.replace('[stages.polish]\npart = "soften"\n', ""), registry=registry)
    base = without.build(registry).refine(image, "a red ball", "ball")
    assert "polish" not in base.report and base.report["scores"] == report["scores"]
    again = _soften(StageRequest(image=base.image, strength=0.5, steps=4, seed=0)).image
    assert np.array_equal(np.asarray(result.image), np.asarray(again))
    assert not np.array_equal(np.asarray(result.image), np.asarray(base.image))


def test_a_masked_third_stage_and_a_combiner_that_reads_the_third_map(registry: Registry) -> None:
    text = """
name = "edges-only"
[indicators.edges]
part = "edge-map"
[combiner]
part = "edge-mask"
[stages.fix]
part = "touch-up"
[refiner]
iterations = 6
"""
    refiner = Recipe.loads(text, registry=registry).build(registry)
    image = _image()
    result = refiner.refine(image, "", "edges")
    entry = result.report["fix"]
    # masked: the strength rule over the perceptual and alignment scores (none here: q = 0.5)
    assert entry["strength"] == pytest.approx(strength_for([None, None])) and entry["steps"] == 3
    assert entry["regions"] is None and entry["skipped"] is None
    keep = result.mask.binary == 0
    assert keep.any() and (~keep).any()
    out, original = np.asarray(result.image), np.asarray(image)
    assert np.array_equal(out[keep], original[keep])  # pasted back outside the mask, exactly
    assert not np.array_equal(out, original)
    assert result.report["scores"] == {
        "perceptual": None,
        "alignment": None,
        "edges": pytest.approx(result.maps["edges"].score),
    }

    # the combiner declares that it reads the third map: without it the recipe is refused
    missing = text.replace('[indicators.edges]\npart = "edge-map"\n', "")
    with pytest.raises(
        RecipeError,
        match=r"block combiner \(edge-mask\) reads 'maps.edges', which no earlier block writes; "
        r"add a \[indicators.edges\] table",
    ):
        Recipe.loads(missing, registry=registry)
    # a masked extra stage reads the mask: refused without a combiner when the parts are built
    with pytest.raises(RecipeError, match=r"block fix \(touch-up\) reads 'mask'"):
        Recipe.loads(missing.replace('[combiner]\npart = "edge-mask"\n', ""), registry=registry).build(
            registry
        )


def test_extra_role_names_that_would_collide_are_refused(registry: Registry) -> None:
    for table, message in (
        ('[indicators.stage1]\npart = "edge-map"', r"indicators.stage1: role name 'stage1' is taken"),
        ('[stages.combiner]\npart = "soften"', r"stages.combiner: role name 'combiner' is taken"),
        ('[stages.scores]\npart = "soften"', r"stages.scores: role name 'scores' is taken"),
        ('[indicators.Bad]\npart = "edge-map"', r"indicators.Bad: role name 'Bad': use lowercase"),
        ('[stages.polish]\npart = "edge-map"', r"stages.polish.part: unknown stage 'edge-map'"),
    ):
        with pytest.raises(RecipeError, match=message):
            Recipe.loads(f'name = "x"\n{table}\n', registry=registry)


def test_grefine_refine_runs_the_third_role_and_stage(registry: Registry, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from grefine_kit.cli import cli

    recipe = tmp_path / "third.toml"
    recipe.write_text(THIRD, encoding="utf-8")
    folder = tmp_path / "in"
    folder.mkdir()
    _image().save(folder / "ball.png")
    out = tmp_path / "out"
    args = ["refine", str(folder / "ball.png"), "--prompt", "a red ball", "--recipe", str(recipe)]
    result = CliRunner().invoke(cli, [*args, "--maps", "--out", str(out), "--log-format", "off"])
    assert result.exit_code == 0, result.output
    record = json.loads(next(out.glob("*.report.json")).read_text("utf-8"))
    assert record["status"] == "ok", record
    assert "edges" in record["scores"] and record["polish"]["steps_run"] == 2
    written = {p.name for p in out.iterdir()}
    assert {"ball.edges.heatmap.png", "ball.edges.map.npy", "ball.pq.map.npy", "ball.png"} <= written, written
