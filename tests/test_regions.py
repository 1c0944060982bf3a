"""Regions: connected components of the mask, refined one crop each (tiny diffusers, CPU)."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pytest
import torch

from grefine_kit.combiners.g_refine import GRefineCombiner
from grefine_kit.errors import RecipeError
from grefine_kit.recipes.recipe import Recipe
from grefine_kit.refiner.refiner import Refiner
from grefine_kit.refiner.stage_runs import region_seed
from grefine_kit.regions.components import ComponentRegions, label_components
from grefine_kit.stages import diffusion
from grefine_kit.stages.base import StageRequest, StageResult
from grefine_kit.stages.conditioning import content_mask, encode_conditioning
from grefine_kit.stages.diffusion import InpaintStage, working_size
from grefine_kit.testing.conformance import sample_images
from grefine_kit.types import AlignmentReport, Mask, QualityMap

PROMPT = "a red house next to a green tree"
PHRASE = "green tree"
SIZE = (1024, 768)
#: two defects in opposite corners, as fractions of the image: perceptual top-left, alignment bottom-right
TOP_LEFT = (0.05, 0.05, 0.2, 0.2)
BOTTOM_RIGHT = (0.8, 0.78, 0.95, 0.95)


def _box_map(size: tuple[int, int], box: tuple[float, float, float, float], low: float) -> np.ndarray:
    w, h = size
    m = np.ones((h, w), np.float32)
    x0, y0, x1, y1 = box
    m[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = low
    return m


@attrs.define
class CornerPerceptual:
    """Perceptual quality 0 in one box, 1 elsewhere (a controlled map, not a model)."""

    box: tuple[float, float, float, float] = TOP_LEFT
    needs_prompt: bool = False

    def score(self, images: Any, prompts: Any = None) -> list[QualityMap]:
        return [QualityMap(map=_box_map(im.size, self.box, 0.0), score=0.4) for im in images]


@attrs.define
class CornerAlignment:
    """Alignment defect of ``phrase`` in one box: the map, the report and its defect map."""

    box: tuple[float, float, float, float] = BOTTOM_RIGHT
    phrase: str = PHRASE
    weight: float = 0.1
    needs_prompt: bool = True
    #: declared (the indicator protocol's member): its maps carry the report the regions read
    writes_report: bool = True

    def score(self, images: Any, prompts: Any = None) -> list[QualityMap]:
        out = []
        for im in images:
            good = _box_map(im.size, self.box, 0.0)
            pairs: Any = ((self.phrase, self.weight),)
            report = AlignmentReport(
                prompt=PROMPT,
                prompt_score=0.5,
                phrases=(),
                emphasis=pairs,
                defect_maps={self.phrase: 1 - good},
            )
            out.append(QualityMap(map=good, score=0.6, report=report))
        return out


@attrs.define
class Recording:
    """Delegates to a real stage and records the requests (a spy: the output is real)."""

    inner: Any
    requests: list[StageRequest] = attrs.field(factory=list)

    @property
    def role(self) -> str:
        return str(self.inner.role)

    def run(self, request: StageRequest) -> StageResult:
        self.requests.append(request)
        result: StageResult = self.inner.run(request)
        return result


@pytest.fixture(scope="module")
def corners() -> dict[str, Any]:
    """One refine of a 1024x768 image with two corner defects, recording every conditioning."""
    image = sample_images([SIZE])[0]
    spy = Recording(InpaintStage(model="tiny"))
    refiner = Refiner(
        perceptual=CornerPerceptual(),
        alignment=CornerAlignment(),
        combiner=GRefineCombiner(),
        regions=ComponentRegions(padding=16),
        stage1=spy,
        seed=7,
    )
    conditionings: list[dict[str, Any]] = []
    original = diffusion.encode_conditioning

    def recording(*args: Any, **kwargs: Any) -> dict[str, Any]:
        out = original(*args, **kwargs)
        conditionings.append(out)
        return out

    diffusion.encode_conditioning = recording  # type: ignore[assignment]
    try:
        result = refiner.refine(image, PROMPT, "corners")
    finally:
        diffusion.encode_conditioning = original  # type: ignore[assignment]
    return {"image": image, "result": result, "requests": spy.requests, "conditionings": conditionings}


def test_two_corner_defects_give_two_regions_and_two_crops(corners: dict[str, Any]) -> None:
    result, requests = corners["result"], corners["requests"]
    regions = result.report["stage1"]["regions"]
    assert len(regions) == 2 and len(requests) == 2 and len(result.regions) == 2
    w, h = SIZE
    for region, request in zip(regions, requests, strict=True):
        left, top, right, bottom = region["crop"]
        assert request.image.size == (right - left, bottom - top)
        assert (right - left) * (bottom - top) < 0.1 * w * h, "each crop is small, not the whole image"
        assert region["steps_run"] > 0 and region["seconds"] > 0
        assert set(region) >= {"box", "area", "source", "phrase", "strength", "steps_run", "seconds", "seed"}
    by_source = {r["source"]: r for r in regions}
    assert set(by_source) == {"perceptual", "alignment"}
    assert by_source["perceptual"]["phrase"] is None and by_source["alignment"]["phrase"] == PHRASE
    assert by_source["perceptual"]["box"][0] < w / 2 and by_source["alignment"]["box"][0] > w / 2


def test_pixels_outside_every_region_come_back_exactly(corners: dict[str, Any]) -> None:
    result, image = corners["result"], corners["image"]
    inside = np.zeros((SIZE[1], SIZE[0]), bool)
    for region in result.regions:
        left, top, right, bottom = region.crop
        inside[top:bottom, left:right] |= region.mask.binary > 0
    out, before = np.asarray(result.image), np.asarray(image)
    assert np.array_equal(out[~inside], before[~inside])
    assert (out[inside] != before[inside]).any(-1).mean() > 0.5, "the regions were repainted"


def test_region_seeds_derive_from_the_image_seed_and_the_index(corners: dict[str, Any]) -> None:
    report = corners["result"].report
    seeds = [r.seed for r in corners["requests"]]
    assert seeds == [region_seed(report["seed"], i) for i in range(2)] and seeds[0] != seeds[1]
    assert [r["seed"] for r in report["stage1"]["regions"]] == seeds


def test_alignment_region_conditioning_is_prompt_plus_weight_times_its_phrase(
    corners: dict[str, Any],
) -> None:
    pipe = InpaintStage(model="tiny").pipeline()
    sources = [r["source"] for r in corners["result"].report["stage1"]["regions"]]
    got = dict(zip(sources, corners["conditionings"], strict=True))
    plain = encode_conditioning(pipe, PROMPT, guidance=False)
    phrase = encode_conditioning(pipe, PHRASE, guidance=False)
    positions = content_mask(pipe, PHRASE, plain["prompt_embeds"].shape)
    expected = plain["prompt_embeds"] + 0.1 * phrase["prompt_embeds"] * positions
    torch.testing.assert_close(got["alignment"]["prompt_embeds"], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        got["alignment"]["pooled_prompt_embeds"],
        plain["pooled_prompt_embeds"] + 0.1 * phrase["pooled_prompt_embeds"],
        rtol=0,
        atol=1e-6,
    )
    # the perceptual region uses the prompt alone
    torch.testing.assert_close(got["perceptual"]["prompt_embeds"], plain["prompt_embeds"], rtol=0, atol=0)
    assert not torch.allclose(got["alignment"]["prompt_embeds"], plain["prompt_embeds"])


# --- the detector on its own ------------------------------------------------------------------


def _mask(binary: np.ndarray) -> Mask:
    b = binary.astype(np.float32)
    return Mask(binary=b, soft=b)


def test_label_components_matches_scipy_8_connectivity() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for density in (0.2, 0.45, 0.6):
        binary = rng.random((37, 53)) < density
        labels, n = label_components(binary)
        ref, n_ref = ndimage.label(binary, structure=np.ones((3, 3)))
        assert n == n_ref
        # the same partition: each of our labels maps to exactly one of scipy's, and back
        pairs = set(zip(labels[binary].tolist(), ref[binary].tolist(), strict=True))
        assert len(pairs) == n and len({a for a, _ in pairs}) == n and len({b for _, b in pairs}) == n
        assert (labels[~binary] == 0).all()


def _three_blobs() -> np.ndarray:
    binary = np.zeros((60, 80), bool)
    binary[2:6, 2:6] = True  # 16 px
    binary[20:30, 30:40] = True  # 100 px
    binary[45:55, 60:78] = True  # 180 px
    return binary


def test_area_filters_k_largest_and_merge_single() -> None:
    mask = _mask(_three_blobs())
    total = 60 * 80
    assert len(ComponentRegions().detect(mask, {}, None)) == 3
    kept = ComponentRegions(min_area=50 / total).detect(mask, {}, None)
    assert [r.box for r in kept] == [(30, 20, 40, 30), (60, 45, 78, 55)]
    assert len(ComponentRegions(max_area=120 / total).detect(mask, {}, None)) == 2
    (largest,) = ComponentRegions(k_largest=1).detect(mask, {}, None)
    assert largest.box == (60, 45, 78, 55) and largest.area == pytest.approx(180 / total)
    (single,) = ComponentRegions(merge="single", padding=0).detect(mask, {}, None)
    assert single.box == (2, 2, 78, 55) and single.crop == single.box and single.source == "mask"
    assert single.mask.binary.sum() == 16 + 100 + 180


def test_dilate_erode_blur_and_padding_in_pixels() -> None:
    mask = _mask(_three_blobs())
    grown = ComponentRegions(dilate=2, k_largest=1, padding=5).detect(mask, {}, None)[0]
    assert grown.box == (58, 43, 80, 57)  # clipped at the right edge (80)
    assert grown.crop == (53, 38, 80, 60)
    shrunk = ComponentRegions(dilate=-2).detect(mask, {}, None)
    assert [r.box for r in shrunk] == [(32, 22, 38, 28), (62, 47, 76, 53)]  # the 4x4 blob eroded away
    blurred = ComponentRegions(blur=3, k_largest=1, padding=0).detect(mask, {}, None)[0]
    assert blurred.box == (57, 42, 80, 58)
    soft = blurred.mask.soft
    assert soft.max() == 1.0 and 0 < soft[soft > 0].min() < 1, "a ramp outside the region"


def test_sources_follow_the_maps() -> None:
    binary = _three_blobs()
    mask = _mask(binary)
    p = np.ones((60, 80), np.float32)
    p[2:6, 2:6] = 0.0
    defect = np.zeros((60, 80), np.float32)
    defect[45:55, 60:78] = 1.0
    pairs: Any = (("blue car", 0.3),)
    report = AlignmentReport(
        prompt="p", prompt_score=0.5, phrases=(), emphasis=pairs, defect_maps={"blue car": defect}
    )
    regions = ComponentRegions().detect(mask, {"perceptual": QualityMap(map=p, score=0.5)}, report)
    assert [(r.source, r.phrase, r.emphasis) for r in regions] == [
        ("perceptual", None, ()),
        ("mask", None, ()),
        ("alignment", "blue car", (("blue car", 0.3),)),
    ]


def test_max_upscale_caps_the_working_size() -> None:
    assert working_size((100, 50), 1024) == (1448, 728)
    assert working_size((100, 50), 1024, max_upscale=2.0) == (200, 96)
    assert working_size((2000, 1000), 1024, max_upscale=2.0) == working_size((2000, 1000), 1024)


# --- recipes ------------------------------------------------------------------------------------


def test_a_recipe_whose_regions_read_a_mask_nothing_writes_is_refused() -> None:
    text = 'name = "x"\n[regions]\npart = "components"\n[stage1]\npart = "inpaint"\n'
    with pytest.raises(RecipeError, match=r"regions \(components\) reads 'mask'.*\[combiner\]"):
        Recipe.loads(text)


def test_old_only_masked_key_is_refused_with_the_migration() -> None:
    text = 'name = "x"\n[refiner]\nonly_masked = true\n'
    with pytest.raises(
        RecipeError, match=r'refiner.only_masked: replaced by a \[regions\] table.*merge = "single"'
    ):
        Recipe.loads(text)


def test_img2img_baseline_has_no_combiner_and_regions_recipe_builds() -> None:
    baseline = Recipe.load("img2img-baseline")
    assert baseline.part("combiner") is None
    assert [b.name for b in baseline.build().blocks] == ["stage2"]
    regions = Recipe.load("g-refine-regions").build()
    assert [b.name for b in regions.blocks] == [
        "perceptual",
        "alignment",
        "combiner",
        "regions",
        "stage1",
        "stage2",
    ]


def test_tiny_recipe_with_regions_keeps_every_pixel_outside_its_regions() -> None:
    data = Recipe.load("tiny").to_dict()
    data["regions"] = {"part": "components", "padding": 4}
    del data["stage2"]
    refiner = Recipe.from_dict(data).build()
    image = sample_images([(64, 48)])[0]
    result = refiner.refine(image, "a red cube on a table", "tiny")
    assert result.image.size == (64, 48) and result.regions is not None
    inside = np.zeros((48, 64), bool)
    for region in result.regions:
        left, top, right, bottom = region.crop
        inside[top:bottom, left:right] |= region.mask.binary > 0
    assert np.array_equal(np.asarray(result.image)[~inside], np.asarray(image)[~inside])


def test_an_items_own_seed_reaches_a_real_refiner_in_the_batch_runner(tmp_path: Any) -> None:
    """The runner passes an item's seed to ``Refiner.refine(seed=)``: derive_seed(item seed, id)."""
    import json

    from grefine_kit.runner.refine import refine_items
    from grefine_kit.runs.items import Item
    from grefine_kit.stages.base import derive_seed
    from grefine_kit.stages.diffusion import Img2ImgStage

    path = tmp_path / "in.png"
    sample_images([(40, 32)])[0].save(path)
    refiner = Refiner(stage2=Img2ImgStage(model="tiny"), split=0.0, delta=0.5, seed=3)
    items = [Item(id="a", image=path, prompt="p", seed=11), Item(id="b", image=path, prompt="p")]
    refine_items(items, refiner, tmp_path / "out", progress=False)
    lines = (tmp_path / "out" / "reports.jsonl").read_text().splitlines()
    seeds = {rec["id"]: rec["seed"] for rec in map(json.loads, lines)}
    assert seeds == {"a": derive_seed(11, "a"), "b": derive_seed(3, "b")}


@attrs.define
class Centre:
    """A third-party region detector: the mask inside the image's central half, one region."""

    def detect(self, mask: Mask, maps: Any, report: Any) -> list[Any]:
        from grefine_kit.regions.base import Region

        h, w = mask.binary.shape
        crop = (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
        local = mask.binary[crop[1] : crop[3], crop[0] : crop[2]] > 0
        if not local.any():
            return []
        ys, xs = np.nonzero(local)
        left, top = crop[0] + int(xs.min()), crop[1] + int(ys.min())
        box = (left, top, crop[0] + int(xs.max()) + 1, crop[1] + int(ys.max()) + 1)
        return [
            Region(box=box, crop=crop, mask=_mask(local), area=float(local.sum()) / (h * w), source="mask")
        ]


class CentrePlugin:
    """Registers ``Centre`` and a controlled indicator through the plugin hooks."""

    from grefine_kit import hookimpl

    @hookimpl
    def register_regions(self, register: Any) -> None:
        register("centre", Centre, summary="the mask's central half")

    @hookimpl
    def register_indicators(self, register: Any) -> None:
        register("corner-test", CornerPerceptual, summary="quality 0 in a box")


def test_a_plugin_region_detector_is_checked_and_used_by_a_recipe(register_plugin: Any) -> None:
    from grefine_kit.testing import check_part

    registry = register_plugin(CentrePlugin(), distribution="grefine-centre")
    check_part("regions", "centre")
    data = {
        "name": "x",
        "indicators": {"perceptual": {"part": "corner-test", "box": [0.1, 0.1, 0.9, 0.9]}},
        "combiner": {"part": "g-refine", "grow": 0.0, "feather": 0.0},
        "regions": {"part": "centre"},
        "stage1": {"part": "inpaint", "model": "tiny", "device": "cpu"},
    }
    refiner = Recipe.from_dict(data, registry=registry).build(registry)
    assert [b.label for b in refiner.blocks][1:] == [
        "combiner (g-refine)",
        "regions (centre)",
        "stage1 (inpaint)",
    ]
    image = sample_images([(64, 48)])[0]
    result = refiner.refine(image, PROMPT, "centre")
    (region,) = result.report["stage1"]["regions"]
    assert region["crop"] == [16, 12, 48, 36] and region["source"] == "mask" and region["steps_run"] > 0
    out, before = np.asarray(result.image), np.asarray(image)
    outside = np.ones((48, 64), bool)
    outside[12:36, 16:48] = False
    assert np.array_equal(out[outside], before[outside]), "the mask outside the detector's region is kept"
