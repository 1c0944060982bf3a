"""End-to-end runs of the CLI on the offline `tiny` recipe (tiny random-weight models)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.parts.registry import get_registry
from grefine_kit.recipes.recipe import Recipe

BUILTIN_RECIPES = (
    "demo",
    "g-refine",
    "g-refine-perceptual",
    "g-refine-alignment",
    "g-refine-stage1",
    "g-refine-regions",
    "img2img-baseline",
    "restore",
    "restore-global",
    "tiny",
)


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("name", BUILTIN_RECIPES)
def test_every_shipped_recipe_validates_and_round_trips(name: str):
    assert name in get_registry().names("recipe")
    recipe = Recipe.load(name)
    recipe.validate()  # builds every part: no weights load
    assert Recipe.loads(recipe.dump()).to_dict() == recipe.to_dict()


def _gradient(w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full((h, w), 90)], -1).astype(
        np.uint8
    )


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    deep = _gradient(40, 30)[..., 0].astype(np.uint16) * 257
    Image.fromarray(deep).save(folder / "deep16.png")
    assert Image.open(folder / "deep16.png").mode.startswith("I")
    rgba = np.dstack([_gradient(48, 32), np.full((32, 48), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    Image.fromarray(_gradient(17, 9)).save(folder / "small.png")
    Image.fromarray(_gradient(4000, 3000)).save(folder / "large.jpg", quality=60)
    return folder


def test_score_folder_with_tiny_recipe(mixed_folder: Path, tmp_path: Path):
    out = tmp_path / "scores"
    result = run("score", str(mixed_folder), "--recipe", "tiny", "--out", str(out))
    assert result.exit_code == 1, result.output  # one image failed, the others were scored
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert sorted(Path(r["file"]).name for r in rows) == sorted(p.name for p in mixed_folder.iterdir())
    by_name = {Path(r["file"]).name: r for r in rows}
    assert by_name["corrupt.png"]["status"] == "error" and by_name["corrupt.png"]["error"]
    for name, (w, h) in {
        "deep16.png": (40, 30),
        "alpha.png": (48, 32),
        "small.png": (17, 9),
        "large.jpg": (4000, 3000),
    }.items():
        row = by_name[name]
        assert row["status"] == "ok", row
        assert 0.0 <= float(row["score"]) <= 1.0
        overlay = Image.open(out / row["heatmap"])  # large.jpg -> large.jpg.heatmap.png
        assert overlay.size == (w, h)
        assert np.load(out / row["map"]).shape == (h, w)
    assert not (out / "corrupt.heatmap.png").exists()


def test_score_aq_map_json_has_the_alignment_report(tmp_path: Path):
    image = tmp_path / "house.png"
    Image.fromarray(_gradient(64, 48)).save(image)
    out = tmp_path / "aq"
    result = run(
        "score",
        str(image),
        "--indicator",
        "aq-map",
        "--recipe",
        "tiny",
        "--prompt",
        "a red house with a blue door",
        "--format",
        "json",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    report = record["details"]["report"]
    assert [p["noun"] for p in report["phrases"]] == ["house", "door"]
    assert all(0.0 <= p["phrase_score"] <= 1.0 for p in report["phrases"])


def test_refine_batch_keeps_going_and_resumes(mixed_folder: Path, tmp_path: Path):
    (mixed_folder / "large.jpg").unlink()  # keep the run short
    out = tmp_path / "refined"
    result = run(
        "refine",
        str(mixed_folder),
        "--recipe",
        "tiny",
        "--prompt",
        "a gradient",
        "--out",
        str(out),
        "--save-maps",
    )
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in (out / "reports.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    status = {Path(r["file"]).name: r["status"] for r in lines}
    assert status == {"corrupt.png": "error", "deep16.png": "ok", "alpha.png": "ok", "small.png": "ok"}
    assert Image.open(out / "small.png").size == (17, 9)
    report = json.loads((out / "alpha.report.json").read_text())
    assert report["recipe"]["name"] == "tiny" and report["status"] == "ok"
    assert (out / "alpha.mask.png").exists() and (out / "alpha.pq.heatmap.png").exists()
    # a second run skips what is done and retries only the failure
    again = run("refine", str(mixed_folder), "--recipe", "tiny", "--prompt", "a gradient", "--out", str(out))
    assert again.exit_code == 1
    assert "3 already done" in again.stderr
    assert len((out / "reports.jsonl").read_text().splitlines()) == 5


def test_demo_runs_offline(tmp_path: Path):
    out = tmp_path / "demo"
    result = run("demo", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert str(out.resolve()) in result.stdout
    refined = Image.open(out / "example.png")
    assert refined.size == Image.open(Path(__file__).parents[1] / "grefine_kit" / "data" / "example.png").size
    report = json.loads((out / "example.report.json").read_text())
    assert report["status"] == "ok"
    # the weight-free defect-map puts the mask on the planted defect and little else
    from grefine_kit.demo import mask_summary

    summary = mask_summary(np.asarray(Image.open(out / "example.mask.png").convert("L")) > 127)
    assert summary.defect_covered >= 0.9 and summary.outside < 0.05, summary
    # every pixel of the patch, corners included: a 3×3 median of the block evidence cut the
    # corner blocks off and left specks of noise there (99.6% covered)
    assert summary.defect_covered == 1.0, summary
    assert report["mask_area"] == pytest.approx(summary.area, abs=1e-6)
    assert f"mask:    {summary.area:.1%} of the image" in result.stdout
    assert report["stage1"]["steps_run"] > 0  # the mask was repaired
    assert report["stage1"]["details"]["methods"] == ["denoise"]
    # the repair, against the bundled clean original: the patch much better, the rest untouched
    # but for the mild global pass
    figures = json.loads((out / "example.fidelity.json").read_text())
    assert figures["psnr-region"] >= figures["psnr-region (input)"] + 6.0, figures
    assert figures["ssim-rest"] >= 0.98, figures
    # the printed figures are the report's
    before, after = figures["psnr-region (input)"], figures["psnr-region"]
    assert f"psnr-region {before:.2f} -> {after:.2f} dB" in result.stdout
    before, after = figures["ssim-rest (input)"], figures["ssim-rest"]
    assert f"ssim-rest   {before:.4f} -> {after:.4f}" in result.stdout
    page = (out / "report.html").read_text()
    assert f"{figures['psnr-region']:.4f}" in page and f"{figures['ssim-rest']:.4f}" in page
    next_line = [line for line in result.stdout.splitlines() if line.startswith("Next:")]
    assert next_line and "grefine report" in next_line[0]


def test_demo_keeps_the_tiny_flow(tmp_path: Path):
    result = run("demo", "--recipe", "tiny", "--out", str(tmp_path / "tiny"))
    assert result.exit_code == 0, result.output
    assert "random-weight models" in result.stdout


def test_fetch_weights_for_tiny_needs_nothing():
    result = run("fetch-weights", "--recipe", "tiny")
    assert result.exit_code == 0, result.output
    assert "can now run offline" in result.stdout
    assert "stage1 (inpaint): tiny: local or built in process, nothing to fetch" in result.stdout
    assert "indicators.alignment (aq-map): parser rules: ready" in result.stdout


def test_refiner_encodes_each_image_once_for_both_indicators():
    from grefine_kit.models import BackboneSpec, get_backbone
    from grefine_kit.testing import sample_images

    refiner = Recipe.load("tiny").build()
    backbone = get_backbone(BackboneSpec(model="grefine-tiny", weights="random", device="cpu"))
    backbone.clear_caches()
    before = backbone.image_forward_calls
    result = refiner.refine(sample_images([(40, 28)])[0], "a red cube on a table", image_id="x")
    assert result.perceptual is not None and result.alignment is not None
    assert backbone.image_forward_calls == before + 1
