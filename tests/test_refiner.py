"""The Refiner on tiny random-weight diffusers stages (CPU, offline) with controlled indicators."""

from __future__ import annotations

import json
from typing import Any

import attrs
import numpy as np
import pytest
from PIL import Image

from grefine_kit.combiners.g_refine import AlignmentCombiner, GRefineCombiner, PerceptualCombiner
from grefine_kit.errors import RecipeError
from grefine_kit.indicators.base import Indicator
from grefine_kit.refiner.refiner import Refiner, RefineResult, paste_back
from grefine_kit.refiner.strength import stage1_strength
from grefine_kit.regions.components import ComponentRegions
from grefine_kit.stages.base import StageRequest, StageResult
from grefine_kit.stages.diffusion import Img2ImgStage, InpaintStage
from grefine_kit.testing.conformance import sample_images
from grefine_kit.types import AlignmentReport, QualityMap

PROMPT = "a red house next to a green tree"


@attrs.define
class BoxIndicator:
    """Test double for the Indicator protocol: quality ``low`` inside a box given as fractions
    ``(left, top, right, bottom)`` of the image, 1 elsewhere; a fixed score; optionally an AQ-style
    report with emphasised phrases."""

    box: tuple[float, float, float, float] | None = (0.25, 0.25, 0.75, 0.75)
    low: float = 0.0
    value: float = 0.5
    emphasis: tuple[tuple[str, float], ...] = ()
    needs_prompt: bool = False
    calls: list[int] = attrs.field(factory=list)

    @property
    def writes_report(self) -> bool:
        """Declared (the indicator protocol's member): its maps carry a report."""
        return bool(self.emphasis)

    def score(self, images: Any, prompts: Any = None) -> list[QualityMap]:
        self.calls.append(len(images))
        out = []
        for im in images:
            m = np.ones((im.height, im.width), np.float32)
            if self.box is not None:
                x0, y0, x1, y1 = self.box
                h, w = im.height, im.width
                m[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = self.low
            report = None
            if self.emphasis:
                pairs: Any = self.emphasis  # AlignmentReport's tuple converter confuses mypy's attrs plugin
                report = AlignmentReport(prompt="p", prompt_score=0.5, phrases=(), emphasis=pairs)
            out.append(QualityMap(map=m, score=self.value, indicator="box", report=report))
        return out


@attrs.define
class Recording:
    """Delegates to a real stage and records the requests (a spy, not a fake: output is real)."""

    inner: Any
    requests: list[StageRequest] = attrs.field(factory=list)
    role: str = attrs.field(init=False, default="")

    def __attrs_post_init__(self) -> None:
        self.role = self.inner.role

    def run(self, request: StageRequest) -> StageResult:
        self.requests.append(request)
        result: StageResult = self.inner.run(request)
        return result


def arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im)


def image(size: tuple[int, int] = (96, 72)) -> Image.Image:
    return sample_images([size])[0]


def stage1_refiner(**kw: Any) -> Refiner:
    kw.setdefault("perceptual", BoxIndicator())
    kw.setdefault("combiner", GRefineCombiner())
    kw.setdefault("stage1", InpaintStage(model="tiny"))
    return Refiner(**kw)


def test_box_indicator_follows_the_protocol() -> None:
    assert isinstance(BoxIndicator(), Indicator)


def test_pixels_outside_the_mask_are_identical_after_stage1() -> None:
    img = image()
    res = stage1_refiner().refine(img, PROMPT, "a")
    outside = res.mask.binary == 0
    assert outside.any() and (~outside).any()
    assert np.array_equal(arr(res.image)[outside], arr(img)[outside])
    changed = (arr(res.image) != arr(img)).any(-1)
    assert changed[~outside].mean() > 0.5, "stage 1 did repaint inside the mask"
    assert res.report["stage1"]["skipped"] is None


def test_single_region_inpaints_a_padded_crop_and_keeps_the_rest() -> None:
    img = image((120, 80))
    spy = Recording(InpaintStage(model="tiny"))
    small = BoxIndicator(box=(0.1, 0.1, 0.3, 0.35))
    regions = ComponentRegions(merge="single", padding=8)
    res = stage1_refiner(perceptual=small, stage1=spy, regions=regions).refine(img, PROMPT, "a")
    (region,) = res.report["stage1"]["regions"]
    left, top, right, bottom = region["crop"]
    ys, xs = np.nonzero(res.mask.binary)
    assert region["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert (left, top) == (max(0, xs.min() - 8), max(0, ys.min() - 8))
    assert (right, bottom) == (min(120, xs.max() + 1 + 8), min(80, ys.max() + 1 + 8))
    assert spy.requests[0].image.size == (right - left, bottom - top)
    assert spy.requests[0].mask is not None and spy.requests[0].mask.binary.shape == (
        bottom - top,
        right - left,
    )
    outside = res.mask.binary == 0
    assert np.array_equal(arr(res.image)[outside], arr(img)[outside])
    assert (arr(res.image) != arr(img)).any()


def test_same_seed_same_output_other_seed_or_id_differs() -> None:
    img = image()

    def run(seed: int, image_id: str) -> np.ndarray:
        ref = stage1_refiner(stage2=Img2ImgStage(model="tiny"), seed=seed)
        return arr(ref.refine(img, PROMPT, image_id).image)

    first = run(0, "a")
    assert np.array_equal(first, run(0, "a"))
    assert not np.array_equal(first, run(1, "a"))
    assert not np.array_equal(first, run(0, "b"))


def test_odd_sized_input_comes_back_at_its_size() -> None:
    img = image((1001, 667))
    res = stage1_refiner(stage2=Img2ImgStage(model="tiny")).refine(img, PROMPT, "odd")
    assert res.image.size == (1001, 667) and res.image.mode == "RGB"
    assert res.mask.binary.shape == (667, 1001)
    outside = res.mask.binary == 0
    assert res.report["stage2"]["steps_run"] > 0  # stage 2 touched everything, so only check stage 1 alone:
    alone = stage1_refiner().refine(img, PROMPT, "odd")
    assert np.array_equal(arr(alone.image)[outside], arr(img)[outside])


def test_empty_mask_skips_stage1_but_not_stage2() -> None:
    spy1 = Recording(InpaintStage(model="tiny"))
    perfect = BoxIndicator(box=None, value=0.9)
    ref = Refiner(
        perceptual=perfect, combiner=GRefineCombiner(), stage1=spy1, stage2=Img2ImgStage(model="tiny")
    )
    res = ref.refine(image(), PROMPT, "clean")
    assert not spy1.requests, "stage 1 is never called for an empty mask"
    assert res.report["stage1"]["steps_run"] == 0
    assert "nearly empty" in res.report["stage1"]["skipped"]
    assert res.report["stage2"]["steps_run"] == 2 and res.report["stage2"]["skipped"] is None


def test_mask_min_area_skips_small_masks() -> None:
    spy1 = Recording(InpaintStage(model="tiny"))
    small = BoxIndicator(box=(0.0, 0.0, 0.1, 0.1))
    res = stage1_refiner(perceptual=small, stage1=spy1, mask_min_area=0.5).refine(image(), PROMPT, "x")
    assert not spy1.requests and 0 < res.mask.area <= 0.5


def test_full_mask_refines_everything() -> None:
    img = image()
    res = stage1_refiner(perceptual=BoxIndicator(box=(0, 0, 1, 1))).refine(img, PROMPT, "all")
    assert res.mask.area == 1 and (res.mask.soft == 1).all()
    changed = (arr(res.image) != arr(img)).any(-1)
    assert changed.mean() > 0.9


def test_steps_run_is_int_steps_times_strength_and_strength_falls_with_quality() -> None:
    reports = {}
    for value in (0.2, 0.8):
        ref = stage1_refiner(perceptual=BoxIndicator(value=value), iterations=20, split=0.5)
        reports[value] = ref.refine(image(), PROMPT, "s").report["stage1"]
    for value, rep in reports.items():
        assert rep["strength"] == pytest.approx(stage1_strength(value, None))
        assert rep["steps"] == 10 and rep["steps_run"] == int(10 * rep["strength"])
    assert reports[0.2]["strength"] > reports[0.8]["strength"]
    paper = stage1_refiner(perceptual=BoxIndicator(value=0.8), strength_rule="paper").refine(
        image(), PROMPT, "s"
    )
    assert paper.report["stage1"]["strength"] == pytest.approx(0.8)


def test_zero_step_stage2_is_skipped_with_a_reason() -> None:
    ref = stage1_refiner(stage2=Img2ImgStage(model="tiny"), delta=0.05)  # int(10 * 0.05) = 0
    res = ref.refine(image(), PROMPT, "z")
    assert res.report["stage2"]["steps_run"] == 0
    assert "0 denoising steps" in res.report["stage2"]["skipped"]
    only1 = stage1_refiner().refine(image(), PROMPT, "z")
    assert np.array_equal(arr(res.image), arr(only1.image))


def test_emphasis_from_the_alignment_report_reaches_both_stages() -> None:
    spy1, spy2 = Recording(InpaintStage(model="tiny")), Recording(Img2ImgStage(model="tiny"))
    align = BoxIndicator(emphasis=(("green tree", 0.1),), needs_prompt=True)
    ref = Refiner(alignment=align, combiner=AlignmentCombiner(), stage1=spy1, stage2=spy2)
    res = ref.refine(image(), PROMPT, "e")
    assert spy1.requests[0].emphasis == (("green tree", 0.1),) == spy2.requests[0].emphasis
    assert res.report["emphasis"] == [["green tree", 0.1]]


def test_report_is_json_and_complete() -> None:
    ref = stage1_refiner(stage2=Img2ImgStage(model="tiny"), recipe_name="tiny", recipe_hash="abc")
    res = ref.refine(image(), PROMPT, "j")
    report = json.loads(json.dumps(res.report))
    assert report["recipe"] == {"name": "tiny", "hash": "abc", "seed": 0}
    assert report["scores"] == {"perceptual": 0.5, "alignment": None}
    assert report["mask_area"] == pytest.approx(res.mask.area)
    assert set(report["timings"]) >= {"perceptual", "combiner", "stage1", "stage2", "refine"}
    assert report["blocks"] == [
        "perceptual (BoxIndicator)",
        "combiner (GRefineCombiner)",
        "stage1 (InpaintStage)",
        "stage2 (Img2ImgStage)",
    ]
    assert {"torch", "diffusers", "grefine-kit"} <= set(report["versions"])
    assert isinstance(res, RefineResult) and res.perceptual is not None and res.alignment is None


def test_refine_many_does_not_depend_on_batching() -> None:
    items = [(image((64 + 8 * i, 48)), PROMPT, f"id{i}") for i in range(3)]
    ind1, ind3 = BoxIndicator(), BoxIndicator()
    one = list(stage1_refiner(perceptual=ind1, batch_size=1).refine_many(items))
    three = list(stage1_refiner(perceptual=ind3, batch_size=3).refine_many(iter(items)))
    assert ind1.calls == [1, 1, 1] and ind3.calls == [3]
    for a, b in zip(one, three, strict=True):
        assert np.array_equal(arr(a.image), arr(b.image))


def test_configuration_is_validated() -> None:
    with pytest.raises(RecipeError, match="masked"):
        Refiner(combiner=GRefineCombiner(), stage1=Img2ImgStage(model="tiny"))
    with pytest.raises(RecipeError, match="global"):
        Refiner(stage2=InpaintStage(model="tiny"))
    with pytest.raises(RecipeError, match="no steps"):
        Refiner(combiner=GRefineCombiner(), stage1=InpaintStage(model="tiny"), split=0.0)
    with pytest.raises(ValueError):
        Refiner(strength_rule="random")
    with pytest.raises(ValueError):
        Refiner(strength_min=0.9, strength_max=0.2)
    for bad in ({"delta": True}, {"batch_size": True}, {"iterations": True}):
        with pytest.raises(ValueError, match=r"boolean|number"):  # True is an int in Python
            Refiner(**bad)
    with pytest.raises(ValueError):
        Refiner(batch_size=10**6)
    with pytest.raises(TypeError, match=r"\[regions\]"):  # an old option: the migration is named
        Refiner(only_masked=True)
    baseline = Refiner(stage2=Img2ImgStage(model="tiny"), split=0.0, delta=0.5)  # an img2img baseline
    assert baseline.refine(image(), PROMPT, "b").report["stage2"]["steps_run"] == 10


def test_a_block_reading_what_no_earlier_block_writes_is_refused() -> None:
    with pytest.raises(RecipeError, match=r"block combiner \(PerceptualCombiner\) reads 'maps.perceptual'"):
        Refiner(combiner=PerceptualCombiner(), stage1=InpaintStage(model="tiny"))
    with pytest.raises(RecipeError, match=r"block stage1 \(InpaintStage\) reads 'mask'.*\[combiner\]"):
        Refiner(perceptual=BoxIndicator(), stage1=InpaintStage(model="tiny"))
    with pytest.raises(RecipeError, match=r"block regions .* reads 'mask'"):
        Refiner(regions=ComponentRegions())


def test_paste_back() -> None:
    a = Image.new("RGB", (4, 2), (10, 20, 30))
    b = Image.new("RGB", (4, 2), (110, 120, 130))
    soft = np.array([[0, 0.5, 1, 0], [0, 0, 0, 1]], np.float32)
    out = arr(paste_back(a, b, soft))
    assert (
        tuple(out[0, 0]) == (10, 20, 30)
        and tuple(out[0, 1]) == (60, 70, 80)
        and tuple(out[0, 2]) == (110, 120, 130)
    )


def test_end_to_end_with_pq_map_on_the_tiny_backbone() -> None:
    from grefine_kit.indicators.pq_map import PQMap

    ref = Refiner(
        perceptual=PQMap(model="grefine-tiny", weights="random"),
        combiner=GRefineCombiner(),
        stage1=InpaintStage(model="tiny"),
        regions=ComponentRegions(merge="single"),
        stage2=Img2ImgStage(model="tiny"),
    )
    img = image((90, 70))
    res = ref.refine(img, PROMPT, "pq")
    assert res.image.size == img.size and res.perceptual is not None
    assert res.perceptual.map.shape == (70, 90)
    assert res.report["scores"]["perceptual"] == pytest.approx(res.perceptual.score)
    assert res.report["stage1"]["strength"] == pytest.approx(stage1_strength(res.perceptual.score, None))
    json.dumps(res.report)
