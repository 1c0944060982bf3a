"""Region prompts and skip rules (issue 23, item 1): parsing, planning, and their effect on a
real tiny inpainting pipeline (the stage is spied on, its output is real)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from grefine_kit.combiners.g_refine import GRefineCombiner
from grefine_kit.errors import RecipeError, UserError
from grefine_kit.recipes.recipe import Recipe
from grefine_kit.refiner.refiner import Refiner
from grefine_kit.refiner.region_rules import (
    RegionPromptError,
    RegionPrompts,
    SkipRules,
    parse_skip,
    plan_regions,
)
from grefine_kit.regions.base import Region
from grefine_kit.regions.components import ComponentRegions
from grefine_kit.stages.base import StageRequest, StageResult
from grefine_kit.stages.diffusion import InpaintStage
from grefine_kit.testing.conformance import sample_images
from grefine_kit.types import AlignmentReport, Mask, QualityMap

PROMPT = "a red house next to a green tree"
PHRASE = "green tree"
SIZE = (96, 72)
LEFT = (0.05, 0.05, 0.3, 0.35)  # perceptual defect
RIGHT = (0.65, 0.6, 0.95, 0.95)  # alignment defect of PHRASE


def _box(size: tuple[int, int], box: tuple[float, ...]) -> np.ndarray:
    w, h = size
    m = np.ones((h, w), np.float32)
    m[round(box[1] * h) : round(box[3] * h), round(box[0] * w) : round(box[2] * w)] = 0.0
    return m


@attrs.define
class LeftPerceptual:
    needs_prompt: bool = False

    def score(self, images: Any, prompts: Any = None) -> list[QualityMap]:
        return [QualityMap(map=_box(im.size, LEFT), score=0.4) for im in images]


@attrs.define
class RightAlignment:
    needs_prompt: bool = True
    writes_report: bool = True  # declared: its maps carry the report the regions read

    def score(self, images: Any, prompts: Any = None) -> list[QualityMap]:
        out = []
        for im in images:
            good = _box(im.size, RIGHT)
            report = AlignmentReport(
                prompt=PROMPT,
                prompt_score=0.5,
                phrases=(),
                emphasis=((PHRASE, 0.1),),
                defect_maps={PHRASE: 1 - good},
            )
            out.append(QualityMap(map=good, score=0.6, report=report))
        return out


@attrs.define
class Spy:
    """A real tiny inpaint stage that records every request."""

    inner: Any = attrs.field(factory=lambda: InpaintStage(model="tiny", device="cpu"))
    requests: list[StageRequest] = attrs.field(factory=list)

    @property
    def role(self) -> str:
        return "masked"

    def run(self, request: StageRequest) -> StageResult:
        self.requests.append(request)
        result: StageResult = self.inner.run(request)
        return result


def _refine(**options: Any) -> tuple[Any, Spy, Any]:
    own = options.pop("own", None)
    spy = Spy()
    refiner = Refiner(
        perceptual=LeftPerceptual(),
        alignment=RightAlignment(),
        combiner=GRefineCombiner(grow=0.0, feather=0.02),
        regions=ComponentRegions(padding=4),
        stage1=spy,
        iterations=4,
        strength_rule="fixed",
        **options,
    )
    image = sample_images([SIZE])[0]
    return refiner.refine(image, PROMPT, "two", region_prompts=own), spy, image


# --- parsing and planning (no model) --------------------------------------------------------


def test_sep_text_splits_into_order_and_label_prompts() -> None:
    p = RegionPrompts.parse(" a face [SEP]  [SEP] [Hand] a hand, [PROMPT] [SEP] [PROMPT] too [SEP] ")
    assert p.by_order == ("a face", "", "[PROMPT] too") and p.by_label == (("hand", "a hand, [PROMPT]"),)
    assert RegionPrompts.parse(p.text()) == p
    assert RegionPrompts.parse(["x", "y [SEP] z"]).by_order == ("x", "y", "z")
    assert not RegionPrompts.parse("") and not RegionPrompts.parse(None)
    with pytest.raises(ValueError, match=r"label \[FACE\] is given twice"):
        RegionPrompts.parse("[face] a [SEP] [FACE] b")
    assert parse_skip("0, 2,Face") == (0, 2, "face") and parse_skip([1, "x"]) == (1, "x")
    with pytest.raises(ValueError, match="negative"):
        parse_skip([-1])


def _region(area: float, label: str | None, phrase: str | None = None, score: float | None = None) -> Region:
    mask = Mask(binary=np.ones((2, 2), np.float32), soft=np.ones((2, 2), np.float32))
    emphasis = ((phrase, 0.1),) if phrase else ()
    return Region(
        box=(0, 0, 2, 2), crop=(0, 0, 2, 2), mask=mask, area=area, source="mask",
        phrase=phrase, emphasis=emphasis, label=label, score=score,
    )  # fmt: skip


def test_order_beats_label_beats_fallback_and_each_fallback() -> None:
    regions = [_region(0.1, "face"), _region(0.2, "alignment", PHRASE), _region(0.3, "hand")]
    prompts = RegionPrompts.parse("[SEP] [SEP] third [SEP] [face] a face of [PROMPT]")
    plans = plan_regions(regions, prompt=PROMPT, prompts=prompts)
    assert [(p.prompt, p.prompt_source) for p in plans] == [
        (f"a face of {PROMPT}", "label"),
        (PROMPT, "emphasis"),
        ("third", "order"),
    ]
    assert plans[1].emphasis == ((PHRASE, 0.1),) and plans[0].emphasis == plans[2].emphasis == ()
    phrase = plan_regions(regions, prompt=PROMPT, prompts=RegionPrompts(), fallback="phrase")
    assert [(p.prompt, p.prompt_source) for p in phrase][:2] == [(PROMPT, "prompt"), (PHRASE, "phrase")]
    whole = plan_regions(regions, prompt=PROMPT, prompts=RegionPrompts(), fallback="prompt")
    assert {(p.prompt, p.emphasis) for p in whole} == {(PROMPT, ())}
    # a label prompt also matches an alignment region's phrase
    by_phrase = plan_regions(regions, prompt=PROMPT, prompts=RegionPrompts.parse(f"[{PHRASE}] leafy"))
    assert by_phrase[1].prompt == "leafy"


def test_more_order_prompts_than_regions_is_one_clear_error() -> None:
    regions = [_region(0.1, "face"), _region(0.2, "hand")]
    with pytest.raises(RegionPromptError, match=r"3 region prompts by order .* the image has 2 region"):
        plan_regions(regions, prompt=PROMPT, prompts=RegionPrompts.parse("a [SEP] b [SEP] c"))
    assert isinstance(RegionPromptError("x"), UserError)
    # label prompts are not counted, an image without regions is left alone
    plan_regions(regions, prompt=PROMPT, prompts=RegionPrompts.parse("a [SEP] b [SEP] [x] c"))
    assert plan_regions([], prompt=PROMPT, prompts=RegionPrompts.parse("a [SEP] b")) == []


def test_skip_rules_by_index_label_area_and_score() -> None:
    regions = [_region(0.1, "face", score=0.9), _region(0.2, "Hand", score=0.2), _region(0.6, None)]
    reasons = [SkipRules(skip=(0,)).reason(i, r) for i, r in enumerate(regions)]
    assert reasons[0] == "skipped by region_skip (index 0)" and reasons[1:] == [None, None]
    assert SkipRules(skip=("hand",)).reason(1, regions[1]) == "skipped by region_skip (label 'hand')"
    area = SkipRules(min_area=0.15, max_area=0.5)
    assert [area.reason(i, r) is not None for i, r in enumerate(regions)] == [True, False, True]
    score = SkipRules(min_score=0.5)
    assert [score.reason(i, r) is not None for i, r in enumerate(regions)] == [False, True, False]


# --- on the tiny pipeline -------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain() -> tuple[Any, Spy, Any]:
    return _refine()


def test_the_corner_image_has_a_perceptual_and_an_alignment_region(plain: Any) -> None:
    result, spy, _ = plain
    regions = result.report["stage1"]["regions"]
    assert [(r["index"], r["label"], r["prompt_source"]) for r in regions] == [
        (0, "perceptual", "emphasis"),
        (1, "alignment", "emphasis"),
    ]
    assert all(0.5 < r["score"] <= 1.0 for r in regions)
    assert [r.prompt for r in spy.requests] == [PROMPT, PROMPT]
    assert spy.requests[1].emphasis == ((PHRASE, 0.1),)


def test_a_region_prompt_reaches_that_regions_pipeline_call(plain: Any) -> None:
    result, spy, _ = _refine(region_prompts="a mossy roof [SEP] [PROMPT], leafy")
    assert [(r.prompt, r.emphasis) for r in spy.requests] == [
        ("a mossy roof", ()),
        (f"{PROMPT}, leafy", ()),
    ]
    assert [r["prompt_source"] for r in result.report["stage1"]["regions"]] == ["order", "order"]
    # the same seeds and masks as without region prompts: only the prompt changed, so the pixels do
    assert [r.seed for r in spy.requests] == [r.seed for r in plain[1].requests]
    assert not np.array_equal(np.asarray(result.image), np.asarray(plain[0].image))
    # an image's own prompts (the API / a manifest cell) replace the option; by label here
    _, own, _ = _refine(region_prompts="ignored", own="[alignment] a big oak")
    assert [r.prompt for r in own.requests] == [PROMPT, "a big oak"]


def test_a_skipped_region_is_byte_identical_to_the_input_there(plain: Any) -> None:
    result, spy, image = _refine(region_skip=[0])
    entries = result.report["stage1"]["regions"]
    assert len(spy.requests) == 1 and entries[0]["skipped"] == "skipped by region_skip (index 0)"
    assert entries[0]["steps_run"] == 0 and entries[1]["steps_run"] > 0
    left, top, right, bottom = result.regions[0].crop
    out, before = np.asarray(result.image), np.asarray(image)
    assert np.array_equal(out[top:bottom, left:right], before[top:bottom, left:right])
    assert not np.array_equal(out, before), "the other region was repainted"
    # by label: the same region, the same bytes
    by_label, _, _ = _refine(region_skip="perceptual")
    assert np.array_equal(np.asarray(by_label.image), out)
    # every region skipped: the image comes back unchanged and the stage says why
    none, spy_none, _ = _refine(region_max_area=0.01)
    assert not spy_none.requests and np.array_equal(np.asarray(none.image), before)
    assert none.report["stage1"]["skipped"].startswith("every region skipped: skipped: area")


def test_too_many_region_prompts_fail_the_image_with_one_line() -> None:
    with pytest.raises(RegionPromptError, match=r"^3 region prompts by order .* 2 region\(s\)"):
        _refine(own="a [SEP] b [SEP] c")


def test_region_options_without_a_regions_block_are_refused() -> None:
    data = Recipe.load("tiny").to_dict()
    data["refiner"]["region_prompts"] = ["a", "b"]
    with pytest.raises(RecipeError, match=r"region_prompts act on regions: add a \[regions\] table"):
        Recipe.from_dict(data).build()
    data["regions"] = {"part": "components"}
    data["refiner"]["region_skip"] = [0, "perceptual"]
    data["refiner"]["region_prompt_fallback"] = "phrase"
    recipe = Recipe.loads(Recipe.from_dict(data).dump())
    assert recipe.options.region_prompts == ("a", "b") and recipe.options.region_skip == (0, "perceptual")
    with pytest.raises(UserError, match="region_prompt_fallback"):
        Recipe.from_dict({**data, "refiner": {"region_prompt_fallback": "nope"}})
    from grefine_kit.stages.diffusion import Img2ImgStage

    refiner = Refiner(stage2=Img2ImgStage(model="tiny"), split=0.0)
    with pytest.raises(UserError, match="region prompts need a regions block"):
        refiner.refine(sample_images([(16, 16)])[0], "p", region_prompts="a")


def test_region_prompts_are_part_of_the_fingerprint(tmp_path: Path) -> None:
    from grefine_kit.runs.fingerprint import item_fingerprint, stale_reason

    path = tmp_path / "a.png"
    sample_images([(8, 8)])[0].save(path)

    def fp(text: str | None) -> dict[str, Any]:
        return item_fingerprint(path, prompt="p", seed=0, config="c", options={}, region_prompts=text)

    assert stale_reason(fp("a [SEP] b"), fp("a [SEP] c")) == "region prompts changed"
    assert stale_reason(fp(None), fp("a")) == "region prompts changed"
    assert stale_reason(fp(None), fp(None)) is None and "region_prompts" not in fp(None)


def test_manifest_column_cli_and_records(tmp_path: Path) -> None:
    """A manifest's region_prompts column reaches the refiner per item; an item whose list is
    too long fails alone; changing the cell redoes only that item on resume."""
    from click.testing import CliRunner

    from grefine_kit.cli import cli

    data = Recipe.load("tiny").to_dict()
    del data["stage2"]
    data["combiner"] = {"part": "g-refine", "threshold": 0.0, "grow": 0.0, "feather": 0.0}
    data["regions"] = {"part": "components", "padding": 2}
    data["refiner"] = {"iterations": 2, "split": 1.0, "strength_rule": "fixed"}
    recipe = tmp_path / "r.toml"
    recipe.write_text(Recipe.from_dict(data).dump())
    for name, im in zip("ab", sample_images([(40, 32), (40, 32)]), strict=True):
        im.save(tmp_path / f"{name}.png")

    def run(cell_a: str, *extra: str) -> dict[str, Any]:
        manifest = tmp_path / "m.csv"
        manifest.write_text(f'image,prompt,region_prompts\na.png,a cube,"{cell_a}"\nb.png,a cube,x [SEP] y\n')
        args = ["refine", "--manifest", str(manifest), "--recipe", str(recipe), "--out", str(tmp_path / "o")]
        res = CliRunner().invoke(cli, [*args, *extra])
        assert res.exit_code in (0, 1), res.output
        lines = (tmp_path / "o" / "reports.jsonl").read_text().splitlines()
        return {rec["id"]: rec for rec in map(json.loads, lines)}

    first = run("[PROMPT], shiny")
    assert first["a.png"]["status"] == "ok" and first["a.png"]["region_prompts"] == "[PROMPT], shiny"
    assert first["a.png"]["stage1"]["regions"][0]["prompt"] == "a cube, shiny"
    assert first["b.png"]["status"] == "error"
    assert "2 region prompts by order" in first["b.png"]["error"]
    again = run("[PROMPT], dull")
    assert again["a.png"]["redone"] == "region prompts changed"
    assert again["a.png"]["stage1"]["regions"][0]["prompt"] == "a cube, dull"
    # --skip-regions / --region-prompts are --set shortcuts; a bad value is one line, exit 2
    res = CliRunner().invoke(
        cli, ["refine", str(tmp_path / "a.png"), "--prompt", "p", "--recipe", str(recipe),
              "--out", str(tmp_path / "o2"), "--skip-regions", "-1"],
    )  # fmt: skip
    assert res.exit_code == 2 and "negative" in res.output and "Traceback" not in res.output


def test_the_html_report_shows_each_regions_prompt_or_skip() -> None:
    from grefine_kit.report.collect import ReportItem
    from grefine_kit.report.html import render

    regions = [
        {
            "index": 0,
            "label": "face",
            "area": 0.1,
            "score": 0.8,
            "prompt": "a <b>face</b>",
            "prompt_source": "order",
        },
        {
            "index": 1,
            "label": "hand",
            "area": 0.2,
            "score": 0.3,
            "skipped": "skipped by region_skip (index 1)",
        },
    ]
    item = ReportItem(name="x", status="ok", stages={"stage1": {"strength": 0.5, "regions": regions}})
    page = render("refine", [item], title="t")
    assert "a &lt;b&gt;face&lt;/b&gt;" in page and "(order)" in page
    assert "skipped: skipped by region_skip (index 1)" in page


def test_a_manifest_reads_region_prompts_as_text_or_a_jsonl_list(tmp_path: Path) -> None:
    from grefine_kit.runs.manifest import read_manifest

    (tmp_path / "m.jsonl").write_text(
        '{"image": "a.png", "region_prompts": ["a roof", "[alignment] an oak"]}\n'
        '{"image": "b.png", "region_prompts": "x [SEP] y"}\n{"image": "c.png"}\n'
    )
    got = [it.region_prompts for it in read_manifest(tmp_path / "m.jsonl")]
    assert got == ["a roof [SEP] [alignment] an oak", "x [SEP] y", None]
    (tmp_path / "bad.jsonl").write_text('{"image": "a.png", "region_prompts": {"a": 1}}\n')
    with pytest.raises(UserError, match="'region_prompts' must be text"):
        read_manifest(tmp_path / "bad.jsonl")
