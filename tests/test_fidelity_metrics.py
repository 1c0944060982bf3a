"""Metrics that need more than the image: the ``needs`` declaration, the fidelity metric parts,
the manifest's ``reference`` / ``region`` columns, ``grefine benchmark`` feeding them, and
``ssim_unmasked`` in refine records and the HTML report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit import hookimpl
from grefine_kit.cli import cli
from grefine_kit.errors import UserError
from grefine_kit.images.references import load_reference, load_region
from grefine_kit.metrics.base import MetricBase, MetricContext, describe, metric_needs, score_with
from grefine_kit.metrics.context import build_context
from grefine_kit.metrics.fidelity import mask_iou, psnr, ssim
from grefine_kit.metrics.fidelity_parts import PARTS, Psnr, SsimUnmasked
from grefine_kit.parts.registry import Registry
from grefine_kit.runs.manifest import read_manifest
from grefine_kit.stages.base import StageResult
from grefine_kit.testing import sample_images

FIDELITY = (
    "psnr",
    "ssim",
    "psnr-region",
    "ssim-region",
    "psnr-rest",
    "ssim-rest",
    "ssim-unmasked",
    "mask-iou",
)


def _noisy(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    arr = np.asarray(image, np.float64) + np.random.default_rng(seed).normal(
        0, sigma, (image.height, image.width, 3)
    )
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


# -- the declaration ---------------------------------------------------------------------------


def test_registry_metadata_matches_each_parts_declaration():
    registry = Registry.from_plugins(entry_points=False)
    assert set(PARTS) == set(FIDELITY)
    for name in FIDELITY:
        entry = registry.get("metric", name)
        part = registry.create("metric", name)
        assert set(entry.metadata["needs"]) == metric_needs(part) == set(type(part).needs)
        assert entry.metadata["score_range"] == tuple(part.score_range)
        assert entry.metadata["lower_better"] is part.lower_better is False
        assert describe(part).to_json()["needs"] == sorted(metric_needs(part))
    assert metric_needs(registry.create("metric", "piqe")) == frozenset()
    assert describe(registry.create("metric", "piqe")).needs == ()


def test_list_metric_shows_needs():
    result = CliRunner().invoke(cli, ["list", "metric"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines()}
    assert "needs reference+region" in lines["psnr-region"]
    assert "needs input+refiner_mask" in lines["ssim-unmasked"]
    assert "needs region+refiner_mask" in lines["mask-iou"]
    assert "needs" not in lines["piqe"]


@attrs.define
class OldStyle:
    """A metric written before ``needs`` existed: score(images, prompts) only."""

    name: ClassVar[str] = "old"
    lower_better: ClassVar[bool] = False
    needs_prompt: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def score(self, images, prompts=None):
        return [0.5 for _ in images]


class Declared(MetricBase):
    name: ClassVar[str] = "declared"
    lower_better: ClassVar[bool] = False
    needs_prompt: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    needs: ClassVar[frozenset[str]] = frozenset({"region"})

    def score(self, images, prompts=None, contexts=None):
        return [float(c.region.mean()) for c in self.contexts_for(images, contexts)]


def test_score_with_calls_each_metric_the_way_it_is_declared():
    images = sample_images()
    contexts = [MetricContext(region=np.ones((im.height, im.width), bool)) for im in images]
    assert metric_needs(OldStyle()) == frozenset()
    assert score_with(OldStyle(), images, None, contexts) == [0.5, 0.5]  # never given contexts
    assert score_with(Declared(), images, None, contexts) == [1.0, 1.0]
    with pytest.raises(UserError, match="needs region per image"):
        Declared().score(images)
    with pytest.raises(UserError, match="needs region: no region mask"):
        Declared().score(images, None, [MetricContext(), MetricContext()])
    blank = MetricContext(problems={"region": "region r.png: not found"})
    with pytest.raises(UserError, match=r"needs region: region r\.png: not found"):
        Declared().score(images[:1], None, [blank])
    with pytest.raises(UserError, match="2 images but 1 contexts"):
        Declared().score(images, None, contexts[:1])


# -- the parts ---------------------------------------------------------------------------------


def test_parts_compute_the_fidelity_functions():
    image = sample_images([(64, 48)])[0]
    reference = _noisy(image, 12)
    given = _noisy(image, 4, seed=3)
    region = np.zeros((48, 64), bool)
    region[10:30, 20:50] = True
    mask = np.zeros((48, 64), bool)
    mask[12:30, 15:40] = True
    context = MetricContext(input=given, reference=reference, region=region, refiner_mask=mask)
    registry = Registry.from_plugins(entry_points=False)
    got = {name: registry.create("metric", name).score([image], None, [context])[0] for name in FIDELITY}
    assert got["psnr"] == pytest.approx(psnr(image, reference))
    assert got["ssim"] == pytest.approx(ssim(image, reference))
    assert got["psnr-region"] == pytest.approx(psnr(image, reference, region))
    assert got["ssim-region"] == pytest.approx(ssim(image, reference, region))
    assert got["psnr-rest"] == pytest.approx(psnr(image, reference, ~region))
    assert got["ssim-rest"] == pytest.approx(ssim(image, reference, ~region))
    assert got["ssim-unmasked"] == pytest.approx(ssim(image, given, ~mask))
    assert got["mask-iou"] == pytest.approx(mask_iou(mask, region))
    assert len(set(got.values())) == len(got)  # eight different numbers: nothing is wired twice
    skimage_ssim = registry.create("metric", "ssim", {"convention": "skimage"}).score(
        [image], None, [context]
    )
    assert skimage_ssim[0] == pytest.approx(ssim(image, reference, convention="skimage"))


def test_psnr_part_caps_identical_images_and_unmasked_uses_the_whole_image_without_a_mask():
    image = sample_images([(40, 40)])[0]
    same = MetricContext(input=image, reference=image, refiner_mask=np.zeros((40, 40), bool))
    assert Psnr().score([image], None, [same]) == [100.0]
    assert Psnr(max_db=60).score([image], None, [same]) == [60.0]
    other = _noisy(image, 10)
    assert SsimUnmasked().score([other], None, [same]) == [pytest.approx(ssim(other, image))]
    full = attrs.evolve(same, refiner_mask=np.ones((40, 40), bool))
    with pytest.raises(UserError, match="no pixel"):
        SsimUnmasked().score([other], None, [full])


# -- files: manifests and loaders --------------------------------------------------------------


def _save_mask(path: Path, mask: np.ndarray) -> Path:
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(path)
    return path


def test_manifest_reference_and_region_columns(tmp_path):
    (tmp_path / "sub").mkdir()
    manifest = tmp_path / "sub" / "m.csv"
    manifest.write_text(
        "id,image,prompt,reference,region\n"
        "a,a.png,cat,refs/a.png,masks/a.png\n"
        f"b,b.png,dog,,{tmp_path / 'abs.png'}\n"
    )
    a, b = read_manifest(manifest)
    assert (
        a.reference == tmp_path / "sub" / "refs" / "a.png"
        and a.region == tmp_path / "sub" / "masks" / "a.png"
    )
    assert b.reference is None and b.region == tmp_path / "abs.png"
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(json.dumps({"image": "x.png", "reference": "r.png"}) + "\n")
    (item,) = read_manifest(jsonl)
    assert item.reference == tmp_path / "r.png" and item.region is None


def test_loaders_give_one_line_errors(tmp_path):
    image = sample_images([(32, 24)])[0]
    image.save(tmp_path / "ref.png")
    assert load_reference(tmp_path / "ref.png", (32, 24)).size == (32, 24)
    with pytest.raises(UserError, match=r"reference .*ref.png is 32×24, the image is 30×24"):
        load_reference(tmp_path / "ref.png", (30, 24))
    with pytest.raises(UserError, match=r"nope\.png: not found"):
        load_reference(tmp_path / "nope.png", (32, 24))
    mask = np.zeros((24, 32), bool)
    mask[5:10, 5:20] = True
    assert np.array_equal(load_region(_save_mask(tmp_path / "m.png", mask), (32, 24)), mask)
    Image.fromarray(mask.astype(np.uint8), "L").save(tmp_path / "01.png")  # 0/1 grey levels
    assert np.array_equal(load_region(tmp_path / "01.png"), mask)
    Image.fromarray(mask).save(tmp_path / "bits.png")  # a 1-bit PNG
    assert np.array_equal(load_region(tmp_path / "bits.png"), mask)
    with pytest.raises(UserError, match="not a mask"):  # a photo is not a mask
        load_region(tmp_path / "ref.png", (32, 24))
    grey = (mask * 200 + 20).astype(np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    with pytest.raises(UserError, match=r"not a mask \(2 grey levels: 20, 220"):
        load_region(tmp_path / "grey.png", (32, 24))
    with pytest.raises(UserError, match="is 32×24, the image is 32×25"):
        load_region(tmp_path / "m.png", (32, 25))
    context = build_context(["reference", "region"], (32, 25), reference=tmp_path / "ref.png", region=None)
    assert context.reference is None and "is 32×24" in context.problems["reference"]
    with pytest.raises(UserError, match="needs region: no region mask"):
        context.require(["region"], "psnr-region")


# -- grefine benchmark -------------------------------------------------------------------------


@attrs.define
class Brighten:
    """A model-free stage: adds ``amount`` to every pixel (global) or inside the mask (masked)."""

    amount: int = 30
    role: str = "global"

    def run(self, request):
        a = np.asarray(request.image, np.int16) + self.amount
        return StageResult(
            image=Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB"), steps_run=request.steps
        )


BRIGHTEN = """
name = "fr-brighten"
[stage2]
part = "fr-brighten"
amount = 12
[refiner]
iterations = 4
split = 0.0
"""


@pytest.fixture
def plugin(register_plugin, tmp_path):
    recipe = tmp_path / "brighten.toml"
    recipe.write_text(BRIGHTEN)

    class Plugin:
        @hookimpl
        def register_stages(self, register):
            register("fr-brighten", Brighten)

        @hookimpl
        def register_metrics(self, register):
            register("fr-old-style", OldStyle, lower_better=False, score_range=(0.0, 1.0))

        @hookimpl
        def register_recipes(self, register):
            register("fr-brighten", recipe)

    registry = register_plugin(Plugin(), name="fidelity-test-plugin")
    assert not registry.failures, registry.failures
    return registry


def test_benchmark_feeds_reference_region_input_and_refiner_mask(plugin, tmp_path):
    images = sample_images([(64, 48), (48, 40), (40, 40)])
    region = np.zeros((48, 64), bool)
    region[8:30, 10:40] = True
    (tmp_path / "data").mkdir()
    for i, image in enumerate(images):
        image.save(tmp_path / "data" / f"im{i}.png")
        _noisy(image, 8, seed=i).save(tmp_path / "data" / f"ref{i}.png")
    _save_mask(tmp_path / "data" / "region0.png", region)
    Image.fromarray(np.full((40, 40), 128, np.uint8), "L").save(tmp_path / "data" / "grey.png")
    manifest = tmp_path / "data" / "m.csv"
    manifest.write_text(
        "id,image,prompt,reference,region\n"
        "good,im0.png,a,ref0.png,region0.png\n"
        "noregion,im1.png,b,ref1.png,\n"
        "badmask,im2.png,c,ref0.png,grey.png\n"  # a reference of another size, a region not a mask
    )
    out = tmp_path / "bench"
    args = ["benchmark", "--manifest", str(manifest), "--recipe", "fr-brighten", "--out", str(out)]
    for name in (*FIDELITY, "fr-old-style"):
        args += ["--metric", name]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 1, result.output  # 1: some scores are n/a (the items planted to fail)
    assert "24 score(s) n/a" in result.output
    with (out / "scores.csv").open() as f:
        rows = {(r["id"], r["row"]): r for r in csv.DictReader(f)}

    def value(item: str, row: str, metric: str) -> float:
        cell = rows[(item, row)][metric]
        return float(cell) if cell else math.nan

    ref0 = Image.open(tmp_path / "data" / "ref0.png")
    refined = Image.open(out / "fr-brighten" / "im0.png").convert("RGB")
    assert value("good", "original", "psnr") == pytest.approx(psnr(images[0], ref0))
    assert value("good", "fr-brighten", "psnr") == pytest.approx(psnr(refined, ref0))
    assert value("good", "fr-brighten", "ssim-region") == pytest.approx(ssim(refined, ref0, region))
    assert value("good", "fr-brighten", "psnr-rest") == pytest.approx(psnr(refined, ref0, ~region))
    # the original row is the refiner that changes nothing; a maskless recipe changed everything
    assert value("good", "original", "ssim-unmasked") == pytest.approx(1.0)
    assert value("good", "fr-brighten", "ssim-unmasked") == pytest.approx(ssim(refined, images[0]))
    assert value("good", "fr-brighten", "ssim-unmasked") < 1.0
    assert value("good", "fr-brighten", "mask-iou") == 0.0  # an empty mask against a region
    assert (out / "fr-brighten" / "im0.mask.png").is_file()  # maps saved: a metric needs the mask
    # an item without a region: blank region cells, the whole-image ones still there
    assert math.isnan(value("noregion", "fr-brighten", "psnr-region"))
    assert math.isfinite(value("noregion", "fr-brighten", "psnr"))
    # a reference of another size and a region that is not a mask: blank cells, one line each
    assert math.isnan(value("badmask", "original", "psnr"))
    assert math.isnan(value("badmask", "original", "mask-iou"))
    assert math.isfinite(value("badmask", "original", "ssim-unmasked"))
    assert value("badmask", "original", "fr-old-style") == 0.5  # old-style metrics unchanged
    errors = json.loads((out / "summary.json").read_text())["config"]["errors"]
    lines = [line for per in errors.values() for line in per]
    assert any(
        "psnr-region on image 1: metric 'psnr-region' needs region: no region mask" in e for e in lines
    )
    assert any("ref0.png is 64×48, the image is 40×40" in e for e in lines)
    assert any("grey.png: not a mask" in e for e in lines)
    assert all("\n" not in e for e in lines)


# -- refine records and the report -------------------------------------------------------------


def test_refine_record_and_report_show_ssim_unmasked(plugin, tmp_path):
    image = sample_images([(64, 48)])[0]
    image.save(tmp_path / "in.png")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        ["refine", str(tmp_path / "in.png"), "--recipe", "fr-brighten", "--prompt", "x", "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "reports.jsonl").read_text().splitlines()[-1])
    refined = Image.open(out / "in.png").convert("RGB")
    assert record["ssim_unmasked"] == pytest.approx(ssim(refined, image))
    assert 0.0 < record["ssim_unmasked"] < 1.0
    page = CliRunner().invoke(cli, ["report", str(out)], catch_exceptions=False)
    assert page.exit_code == 0, page.output
    html_files = list(out.glob("*.html"))
    assert html_files, page.output
    assert f"ssim-unmasked {record['ssim_unmasked']:.4f}" in html_files[0].read_text()
