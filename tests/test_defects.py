"""Planted-defect sets (`grefine make-defects`) and the offline evidence on a small one (fast).

The full table (9 photos x 3 kinds x 2 seeds) is benchmarks/bench_restore.py, its output in
docs/benchmark.md; here the same measurement runs on 3 bundled photos at 256 px, 1 seed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.errors import UserError


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _small_photos(size: int = 256):
    from grefine_kit.defects.photos import Photo, builtin_photos

    wanted = ("astronaut", "coffee", "example")
    return [
        Photo(
            p.name, p.image.resize((size, size * p.image.height // p.image.width), Image.Resampling.LANCZOS)
        )
        for p in builtin_photos()
        if p.name in wanted
    ]


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from grefine_kit.defects.build import make_defect_set

    out = tmp_path_factory.mktemp("planted")
    return make_defect_set(_small_photos(), out, seeds=(0,)).manifest


def test_make_defects_writes_a_manifest_set(tmp_path: Path):
    photo = tmp_path / "photos"
    photo.mkdir()
    _small_photos(200)[0].image.save(photo / "astro.png")
    out = tmp_path / "set"
    result = run("make-defects", str(photo), "--out", str(out), "--seeds", "0,1")
    assert result.exit_code == 0, result.output
    assert "planted 6 defect(s) (2 noise, 2 blur, 2 jpeg)" in result.stdout
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert list(rows[0]) == ["id", "image", "prompt", "reference", "region"]
    assert [r["id"] for r in rows][:2] == ["astro-noise-s0", "astro-noise-s1"]
    facts = {r["id"]: r for r in csv.DictReader((out / "defects.csv").open())}
    for row in rows:
        image = np.asarray(Image.open(out / row["image"]))
        reference = np.asarray(Image.open(out / row["reference"]))
        region = np.asarray(Image.open(out / row["region"])) > 0
        assert image.shape == reference.shape and region.shape == image.shape[:2]
        assert np.array_equal(image[~region], reference[~region])  # the defect stays in its box
        assert (image[region] != reference[region]).any()
        area = region.mean()
        assert 1 / 25 - 0.01 <= area <= 1 / 6 + 0.01
        assert float(facts[row["id"]]["area"]) == pytest.approx(area, abs=1e-4)
    # seeded: the same command writes the same files
    again = tmp_path / "again"
    assert run("make-defects", str(photo), "--out", str(again), "--seeds", "0,1").exit_code == 0
    for row in rows:
        assert (out / row["image"]).read_bytes() == (again / row["image"]).read_bytes()


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ((), "no photos: give image files or folders, or --builtin"),
        (("--kinds", "rust"), "unknown defect kind 'rust'"),
        (("--seeds", "a,b"), "--seeds must be integers"),
        (("--sizes", "1/0"), "--sizes takes two area fractions"),
        (("--sizes", "0.5,0.2"), "defect sizes must satisfy"),
    ],
)
def test_make_defects_bad_inputs_are_one_line(tmp_path: Path, args: tuple[str, ...], text: str):
    photos = () if not args else (str(Path(__file__).parents[1] / "grefine_kit" / "data" / "example.png"),)
    result = run("make-defects", *photos, *args, "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_user_photos_are_kept_as_files_and_read_one_at_a_time(tmp_path: Path):
    """A folder of photos is never held in memory whole: load_photos checks each file and keeps
    its path and size; the set built from them holds the files' own pixels."""
    from grefine_kit.defects.build import make_defect_set
    from grefine_kit.defects.photos import load_photos

    folder = tmp_path / "photos"
    folder.mkdir()
    for p in _small_photos(256)[:2]:
        p.image.save(folder / f"{p.name}.png")
    photos = load_photos([folder])
    assert [p.name for p in photos] == ["astronaut", "coffee"]
    assert all(isinstance(p.source, Path) for p in photos)
    assert [p.size for p in photos] == [Image.open(folder / f"{p.name}.png").size for p in photos]
    out = make_defect_set(photos, tmp_path / "set", kinds=("noise",)).out_dir
    for p in photos:
        kept = np.asarray(Image.open(out / "references" / f"{p.name}.png"))
        assert np.array_equal(kept, np.asarray(Image.open(folder / f"{p.name}.png").convert("RGB")))


def test_a_photo_too_small_for_the_defect_size_is_one_line_and_writes_nothing(tmp_path: Path):
    small = tmp_path / "tiny.png"
    Image.new("RGB", (100, 80), (90, 120, 30)).save(small)
    result = run("make-defects", str(small), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "tiny: 100x80 is too small for a defect of 0.04 of the image" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_plant_defect_rejects_bad_kinds_and_sizes():
    from grefine_kit.defects.plant import plant_defect

    photo = _small_photos(200)[0].image
    with pytest.raises(UserError, match="unknown defect kind"):
        plant_defect(photo, "rust", 0)
    with pytest.raises(UserError, match="defect sizes"):
        plant_defect(photo, "noise", 0, sizes=(0.0, 0.1))


@pytest.fixture(scope="module")
def measured(small_set: Path):
    from grefine_kit.defects.evaluate import (
        Arm,
        load_cases,
        measure,
        oracle_baseline,
        oracle_recipe,
        summarise,
    )
    from grefine_kit.recipes.recipe import Recipe

    restore = Recipe.load("restore")
    arms = [
        Arm("restore", restore),
        Arm("oracle", oracle_recipe(restore), oracle=True),
        Arm("global", Recipe.load("restore-global")),
        oracle_baseline(Recipe.load("restore-global")),
    ]
    rows = measure(load_cases(small_set), arms)
    return rows, {(t["kind"], t["arm"]): t for t in summarise(rows)}


def test_oracle_repairs_without_harm_where_the_whole_image_pass_harms(measured):
    _rows, table = measured
    for kind in ("noise", "blur", "jpeg"):
        oracle, whole = table[(kind, "oracle")], table[(kind, "global")]
        assert oracle["ssim_rest_min"] >= 0.99, oracle  # stage 2 included
        assert oracle["ssim_rest_min"] > whole["ssim_rest_min"], (oracle, whole)
        # told the region, the baseline repairs as the oracle's stage 1 does and harms the rest
        told = table[(kind, "restore-global oracle")]
        assert told["gain"] >= oracle["gain"] - 0.1, (told, oracle)
        assert told["ssim_rest"] < oracle["ssim_rest_min"] - 0.005, (told, oracle)
    # on 3 photos at 256 px noise is the kind whose whole-image harm is clear of 0.95 (0.91; blur
    # 0.945, JPEG 0.989 detector-driven, 0.948 told the region); docs/benchmark.md's full table:
    # noise and JPEG below 0.95, blur 0.952 (the gated deblur leaves in-focus edges be)
    assert table[("noise", "global")]["ssim_rest"] <= 0.95
    assert table[("noise", "oracle")]["gain"] >= 4.0
    assert table[("blur", "oracle")]["gain_min"] >= 0.0  # never worse than the defective input
    # the issue asks 1 dB; JPEG-aware deblocking gives 1.30 dB median here (generic TV: 0.81)
    assert table[("jpeg", "oracle")]["gain"] >= 1.0


def test_detector_finds_defects_and_leaves_the_rest(measured):
    rows, table = measured
    assert table[("noise", "restore")]["mask_iou"] >= 0.5
    assert table[("jpeg", "restore")]["mask_iou"] >= 0.5
    for kind in ("noise", "blur", "jpeg"):
        assert table[(kind, "restore")]["mask_rest"] <= 0.05
    detector = [r for r in rows if r.arm == "restore"]
    assert sum(r.psnr < r.psnr_in for r in detector) == 0  # no negative optimisation
