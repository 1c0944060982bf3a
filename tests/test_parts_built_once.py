"""Parts are built once per run on the local engine: the parts the command line's checks
(option validation, preflight) look at are the ones the worker runs with (issue 21)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.parts.registry import Registry
from grefine_kit.recipes.recipe import Recipe


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, str]]:
    """Counts every part the registry constructs, by (kind, name)."""
    counts: Counter[tuple[str, str]] = Counter()
    create = Registry.create

    def counting(self: Registry, kind: str, name: str, options: Any = None) -> Any:
        counts[(kind, name)] += 1
        return create(self, kind, name, options)

    monkeypatch.setattr(Registry, "create", counting)
    return counts


def _images(folder: Path, n: int = 2) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_refine_builds_each_part_of_the_recipe_once(tmp_path: Path, built: Counter[tuple[str, str]]) -> None:
    images = _images(tmp_path / "in")
    args = ["refine", str(images), "--recipe", "tiny", "--prompt", "a cat", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, "--batch-size", "1", "--log-format", "off"])
    assert result.exit_code == 0, result.output
    recipe = Recipe.load("tiny")
    expected = Counter((spec.kind, spec.part) for spec in recipe.parts.values())
    assert expected, "the tiny recipe has parts"
    parts = Counter({key: n for key, n in built.items() if key[0] != "engine"})
    assert set(expected) <= set(parts)  # and the parts they build (aq-map's prompt parser)
    assert set(parts.values()) == {1}, parts  # once each: two images, two batches, one build
    assert built[("engine", "local")] == 1


def test_score_builds_the_indicator_once(tmp_path: Path, built: Counter[tuple[str, str]]) -> None:
    images = _images(tmp_path / "in")
    args = ["score", str(images), "--recipe", "tiny", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, "--batch-size", "1", "--log-format", "off"])
    assert result.exit_code == 0, result.output
    assert built[("indicator", "pq-map")] == 1
    assert all(n == 1 for n in built.values()), built
