"""grefine calibrate: the fitting rules recover planted thresholds; the command runs end to end on
tiny models, writes a recipe overlay that validates, and refuses bad MOS files as evaluate does."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.errors import UserError
from grefine_kit.evaluation.calibration import CalibrationItem, fit_calibration, mask_areas

SIDE = 20  # 400-pixel working maps


def _blob(value: float, background: float, area: float) -> np.ndarray:
    d = np.full((SIDE, SIDE), background, np.float32)
    d.reshape(-1)[: round(area * SIDE * SIDE)] = value
    return d


def _planted() -> list[CalibrationItem]:
    """16 images. Best quarter (MOS 13..16): deficiency 0.1 with a 5 % speck at 0.3, every noun
    at >= 0.55, phrase scores linspace(0.6, 0.95). Worst quarter (MOS 1..4): 30 % at 0.7, one
    noun at <= 0.45. So: tau = 0.30 (the smallest at which the best quarter has no mask), a_bound =
    0.50 (the middle of (0.45, 0.55], where the quarters separate perfectly), beta = the 10 %
    quantile of the best phrase scores = 0.635."""
    rng = np.random.default_rng(0)
    best_phrases = np.linspace(0.6, 0.95, 20).reshape(4, 5)
    maps = np.stack([_blob(1.0, 0.0, 0.2)] * 5)
    items = []
    for k in range(16):
        mos = float(k + 1)
        if k >= 12:  # best
            phrases = best_phrases[k - 12]
            nouns = np.minimum(phrases, rng.uniform(0.55, 0.6, 5))  # no adjective defect either
            deficiency = _blob(0.3, 0.1, 0.05)
        elif k < 4:  # worst
            nouns = np.array([0.45 - 0.05 * k, 0.7, 0.7, 0.7, 0.7])
            phrases = nouns + 0.01
            deficiency = _blob(0.7, 0.1, 0.3)
        else:
            nouns = rng.uniform(0.3, 0.9, 5)
            phrases = nouns + 0.01
            deficiency = _blob(0.5, 0.1, 0.15)
        items.append(
            CalibrationItem(
                mos=mos,
                perceptual_deficiency=deficiency,
                phrase_scores=phrases,
                noun_scores=nouns,
                noun_maps=maps,
                ancestors=[0, 0, 0, 0, 0],
            )
        )
    return items


def test_fit_recovers_the_planted_thresholds():
    items = _planted()
    fit = fit_calibration(items)
    assert fit.threshold == pytest.approx(0.30, abs=0.01)  # grid 0.005, float32 maps: 0.3f > 0.3
    assert fit.a_bound == pytest.approx(0.50, abs=0.005)
    assert fit.beta == pytest.approx(0.635, abs=0.005)
    assert fit.best_area <= 0.01 and fit.worst_area >= 0.3 and not fit.notes
    # the rule's promise, checked directly: best quarter (almost) unmasked, worst masked
    areas = mask_areas(items, fit.threshold, fit.a_bound)
    assert np.median(areas[12:]) <= 0.01 and np.median(areas[:4]) >= 0.3
    assert fit.set_lines() == [
        f"combiner.threshold={fit.threshold:g}",
        f"indicators.alignment.a_bound={fit.a_bound:g}",
        f"indicators.alignment.beta={fit.beta:g}",
    ]
    table = tomllib.loads(fit.toml())
    assert table["combiner"]["threshold"] == fit.threshold
    assert table["indicators"]["alignment"]["a_bound"] == fit.a_bound


def test_fit_says_when_the_quarters_do_not_separate():
    flat = [CalibrationItem(mos=float(k), perceptual_deficiency=_blob(0.2, 0.2, 0.0)) for k in range(8)]
    fit = fit_calibration(flat)
    assert fit.a_bound is None and fit.beta is None and fit.worst_area == 0.0
    assert fit.notes and "do not separate" in fit.notes[0]
    with pytest.raises(UserError, match="at least 8"):
        fit_calibration(flat[:7])


def _rated_folder(tmp_path: Path, n: int = 8) -> Path:
    rng = np.random.default_rng(1)
    lines = ["image,mos,prompt"]
    for i in range(n):
        pixels = np.clip(rng.normal(30 + 25 * i, 25, (48, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{1 + i / 2},a red house with a blue door")
    csv_path = tmp_path / "mos.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    return csv_path


def test_calibrate_command_on_tiny_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from grefine_kit import api
    from grefine_kit.recipes.overrides import apply_overrides, parse_assignment
    from grefine_kit.recipes.recipe import Recipe

    built: list[str] = []
    real_build = api.build_indicator

    def counting_build(name, **options):
        built.append(name)
        return real_build(name, **options)

    monkeypatch.setattr(api, "build_indicator", counting_build)
    csv_path = _rated_folder(tmp_path)
    out = tmp_path / "cal"
    result = CliRunner().invoke(cli, ["calibrate", str(csv_path), "--recipe", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(built) == ["aq-map", "pq-map"], "each indicator is built once"
    assert "apply with: --set combiner.threshold=" in result.output
    data = json.loads((out / "calibration.json").read_text())
    assert data["n_images"] == 8 and data["n_failed"] == 0 and data["recipe"] == "tiny"
    assert data["median_mask_area_best_quarter"] <= 0.01
    overlay = tomllib.loads((out / "calibration.toml").read_text())
    assert overlay["combiner"]["threshold"] == data["threshold"]
    assert "a_bound" in overlay["indicators"]["alignment"]
    # the --set lines apply to the recipe and validate
    recipe = apply_overrides(Recipe.load("tiny"), [parse_assignment(s) for s in data["set"]])
    recipe.validate()
    assert recipe.part("combiner").options["threshold"] == data["threshold"]
    assert sorted(p.name for p in out.iterdir()) == ["calibration.json", "calibration.toml"]
    # off a terminal (the default auto): one line per image on stderr, as grefine score prints
    lines = [line for line in result.stderr.splitlines() if line.startswith("calibrate [")]
    assert [line.split(":")[0] for line in lines] == [
        f"calibrate [{i + 1}/8] {tmp_path / f'{i}.png'}" for i in range(8)
    ]


def test_calibrate_reports_each_image_and_counts_an_unreadable_one(tmp_path: Path, capsys):
    """collect_items in jsonl: a start event, one item per image (the unreadable one an error
    naming it), an end event, all on stdout; the unreadable image is counted, not fitted."""
    from grefine_kit.evaluation.calibration_data import collect_items
    from grefine_kit.evaluation.mos import read_mos_table
    from grefine_kit.recipes.recipe import Recipe

    csv_path = _rated_folder(tmp_path, n=2)
    (tmp_path / "1.png").write_bytes(b"not an image")
    rows, _ = read_mos_table(str(csv_path), None)
    items, failed = collect_items(rows, Recipe.load("tiny"), progress="jsonl")
    assert (len(items), failed) == (1, 1)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["event"], e.get("status")) for e in events] == [
        ("start", None),
        ("item", "ok"),
        ("item", "error"),
        ("end", None),
    ]
    assert events[0]["kind"] == "calibrate" and events[-1]["failed"] == 1
    assert "1.png" in events[2]["error"] and events[2]["file"].endswith("1.png")


def test_calibrate_refuses_bad_mos_files_like_evaluate(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("image,prompt\n0.png,a cat\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["calibrate", str(bad), "--recipe", "tiny", "--out", str(tmp_path / "o")])
    evaluate = runner.invoke(cli, ["evaluate", str(bad), "--recipe", "tiny", "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 == evaluate.exit_code and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == evaluate.output.strip().splitlines()[-1]
