"""Conformance checks: the contract every part of a kind must keep.

Built-in parts and third-party plugins run the same checks in their tests::

    from grefine_kit.testing import check_part
    check_part("indicator", "my-indicator")          # by registry name
    check_indicator(MyIndicator(), prompt="a cat")  # or on an instance

Each check raises ``AssertionError`` with a message saying which rule was broken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from grefine_kit.parts.roles import PERCEPTUAL
from grefine_kit.types import Mask, PromptTree, QualityMap

if TYPE_CHECKING:
    from grefine_kit.metrics.base import MetricContext
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.stages.base import StageResult

#: prompts every parser must survive (docs/design.md 6.3)
ODD_PROMPTS: tuple[str, ...] = (
    "",
    "   ",
    "!!!",
    "beautiful",
    "a cat. a dog.",
    "dog's bone",
    "state-of-the-art robot",
    "the cat and the cat",
    "Café crème brûlée 🍮",
    "running quickly and happily",
    "\"quoted\" ``x'' (brackets) [a] {b} <c>",
    "\n\t\n",
    " ".join(["a small red fox jumping over the lazy brown dog near a river under a cloudy sky ."] * 8),
)


def sample_images(sizes: Sequence[tuple[int, int]] = ((64, 48), (33, 57))) -> list[Image.Image]:
    """Deterministic RGB test images of the given (width, height) sizes (non-square, odd sizes)."""
    rng = np.random.default_rng(0)
    images = []
    for w, h in sizes:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), np.full((h, w), 0.5)], axis=-1)
        noisy = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
        images.append(Image.fromarray((noisy * 255).astype(np.uint8), "RGB"))
    return images


def check_indicator(indicator: Any, *, prompt: str = "a red square on a blue background") -> list[QualityMap]:
    """An indicator returns one QualityMap per image, at the image's (H, W), values in [0, 1],
    deterministically, for non-square odd-sized images in one batch."""
    from grefine_kit.indicators.base import Indicator

    assert isinstance(indicator, Indicator), f"{indicator!r} does not follow the Indicator protocol"
    assert isinstance(indicator.needs_prompt, bool), "needs_prompt must be a bool"
    images = sample_images()
    prompts = [prompt] * len(images) if indicator.needs_prompt else None
    first = indicator.score(images, prompts)
    assert isinstance(first, list) and len(first) == len(images), (
        "score() must return one QualityMap per image"
    )
    for image, qmap in zip(images, first, strict=True):
        assert isinstance(qmap, QualityMap), f"score() returned {type(qmap).__name__}, not QualityMap"
        assert qmap.map.shape == (image.height, image.width), (
            f"map shape {qmap.map.shape} != image (H, W) {(image.height, image.width)}"
        )
        assert 0.0 <= qmap.score <= 1.0
        assert qmap.to_json()["score"] == qmap.score, "to_json() must carry the score"
    again = indicator.score(images, prompts)
    for a, b in zip(first, again, strict=True):
        assert np.allclose(a.score, b.score, atol=1e-5), "scores must be deterministic"
        assert np.allclose(a.map, b.map, atol=1e-4), "maps must be deterministic"
    return first


def check_parser(parser: Any, prompts: Sequence[str] = ODD_PROMPTS) -> list[PromptTree]:
    """A parser returns a valid PromptTree for every prompt, never raising, with spans inside the text."""
    from grefine_kit.parsers.base import Parser

    assert isinstance(parser, Parser), f"{parser!r} does not follow the Parser protocol"
    trees = []
    for prompt in prompts:
        tree = parser.parse(prompt)
        assert isinstance(tree, PromptTree), f"parse({prompt!r}) returned {type(tree).__name__}"
        assert tree.text == prompt, "PromptTree.text must be the prompt as given"
        for token in tree.tokens:
            assert 0 <= token.start <= token.end <= len(prompt), (
                f"token {token.text!r} has a span outside the text"
            )
        if prompt.strip() and any(c.isalnum() for c in prompt):
            assert tree.tokens, f"parse({prompt!r}) found no tokens"
        trees.append(tree)
    return trees


def _qmap(value: float, size: tuple[int, int]) -> QualityMap:
    w, h = size
    return QualityMap(map=np.full((h, w), value, np.float32), score=value, indicator="check")


def check_combiner(combiner: Any, size: tuple[int, int] = (40, 24)) -> None:
    """A combiner takes the maps by role (``combine(maps, size)``) and returns a Mask at the
    image's size; perfect maps never ask for more repainting than terrible ones (1 = good in
    maps, 1 = repaint in masks); a map of a role it does not know is ignored, not refused.
    The maps given are the perceptual and alignment roles plus every role in ``requires``."""
    from grefine_kit.parts.base import capabilities
    from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL

    w, h = size
    roles = tuple(dict.fromkeys((PERCEPTUAL, ALIGNMENT, *capabilities(combiner).requires)))
    rng = np.random.default_rng(0)
    maps = {
        r: QualityMap(map=rng.random((h, w), dtype=np.float32), score=0.5, indicator="check") for r in roles
    }
    mask = combiner.combine(maps, size)
    assert isinstance(mask, Mask), f"combine() returned {type(mask).__name__}, not Mask"
    assert mask.binary.shape == (h, w), f"mask shape {mask.binary.shape} != (H, W) {(h, w)}"
    assert set(np.unique(mask.binary)).issubset({0.0, 1.0}), "binary mask must hold only 0 and 1"
    good = combiner.combine({r: _qmap(1.0, size) for r in roles}, size)
    bad = combiner.combine({r: _qmap(0.0, size) for r in roles}, size)
    assert good.soft.sum() <= bad.soft.sum() + 1e-6, (
        "perfect maps must not ask for more repainting than bad ones"
    )
    extra = combiner.combine({**maps, "check-extra-role": _qmap(0.0, size)}, size)
    assert isinstance(extra, Mask) and extra.binary.shape == (h, w), (
        "a map of a role the combiner does not know must be ignored"
    )


def _blob_mask(size: tuple[int, int]) -> Mask:
    w, h = size
    binary = np.zeros((h, w), np.float32)
    binary[1 : h // 3, 1 : w // 4] = 1.0  # top-left
    binary[h - h // 3 : h - 1, w - w // 4 : w - 1] = 1.0  # bottom-right
    binary[h // 2 - 2 : h // 2 + 2, w // 2 - 3 : w // 2 + 3] = 1.0  # centre
    return Mask(binary=binary, soft=binary)


def check_regions(detector: Any, size: tuple[int, int] = (48, 36)) -> list[Any]:
    """A region detector returns Regions inside the image, each box inside its crop, with a
    crop-local mask that covers at least one pixel; an empty mask gives no regions; results are
    deterministic. (A detector may find nothing in a non-empty mask: a face detector without
    faces.) Returns the regions found for a three-blob mask."""
    from grefine_kit.combiners.base import empty_mask
    from grefine_kit.regions.base import Region, RegionDetector

    assert isinstance(detector, RegionDetector), f"{detector!r} does not follow the RegionDetector protocol"
    w, h = size
    assert detector.detect(empty_mask(size), {}, None) == [], "an empty mask must give no regions"
    mask = _blob_mask(size)
    perceptual = QualityMap(map=1.0 - mask.binary, score=0.5, indicator="check")
    regions = detector.detect(mask, {PERCEPTUAL: perceptual}, None)
    assert isinstance(regions, list), f"detect() must return a list, not {type(regions).__name__}"
    for region in regions:
        assert isinstance(region, Region), f"detect() returned {type(region).__name__}, not Region"
        left, top, right, bottom = region.crop
        assert 0 <= left < right <= w and 0 <= top < bottom <= h, f"crop {region.crop} is outside the image"
        bl, bt, br, bb = region.box
        assert left <= bl < br <= right and top <= bt < bb <= bottom, f"box {region.box} is outside its crop"
        assert region.mask.binary.shape == (bottom - top, right - left), "mask must be crop-local"
        assert region.mask.binary.any(), "a region must cover at least one pixel"
        assert ((region.mask.soft > 0) <= (region.mask.binary > 0)).all(), "soft must be 0 outside binary"
        assert 0.0 < region.area <= 1.0
    again = detector.detect(mask, {PERCEPTUAL: perceptual}, None)
    assert [(r.box, r.crop, r.source) for r in again] == [(r.box, r.crop, r.source) for r in regions], (
        "regions must be deterministic"
    )
    return list(regions)


def check_stage(stage: Any, *, size: tuple[int, int] = (40, 24), prompt: str = "a red square") -> StageResult:
    """A stage returns an RGB image of the input's size and reports the steps it ran."""
    from grefine_kit.stages.base import StageRequest, StageResult

    image = sample_images([size])[0]
    w, h = size
    binary = np.zeros((h, w), np.float32)
    binary[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1.0
    request = StageRequest(
        image=image,
        mask=Mask(binary=binary, soft=binary),
        prompt=prompt,
        emphasis=(),
        strength=0.5,
        steps=4,
        seed=0,
    )
    result = stage.run(request)
    assert isinstance(result, StageResult), f"run() returned {type(result).__name__}, not StageResult"
    assert result.image.size == image.size, f"output size {result.image.size} != input size {image.size}"
    assert result.image.mode == "RGB", "stages return RGB images"
    assert result.steps_run >= 0
    return result


def sample_contexts(images: Sequence[Image.Image]) -> list[MetricContext]:
    """A :class:`~grefine_kit.metrics.base.MetricContext` per image with every field set: the
    input is the image with a brightened band, the reference the image with mild noise, the
    region the middle third of the rows, the refiner's mask the left half of that band."""
    from grefine_kit.metrics.base import MetricContext

    rng = np.random.default_rng(1)
    contexts = []
    for image in images:
        arr = np.asarray(image.convert("RGB"), np.int16)
        h, w = arr.shape[:2]
        region = np.zeros((h, w), bool)
        region[h // 3 : 2 * h // 3] = True
        mask = region.copy()
        mask[:, w // 2 :] = False
        given = arr.copy()
        given[region] += 25
        noisy = arr + rng.normal(0, 6, arr.shape)
        contexts.append(
            MetricContext(
                input=Image.fromarray(np.clip(given, 0, 255).astype(np.uint8), "RGB"),
                reference=Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB"),
                region=region,
                refiner_mask=mask,
            )
        )
    return contexts


def check_metric(metric: Any, *, prompt: str = "a red square on a blue background") -> list[float]:
    """A metric follows the ``Metric`` protocol: a name, a direction and a score range, one
    finite float per image inside that range, deterministically, for odd-sized images in one
    batch; ``score([])`` is ``[]``; a prompt-reading metric refuses a call without prompts.

    A metric that declares ``needs`` (``MetricBase``) must hold only known needs, is given
    :func:`sample_contexts`, and must refuse (``UserError``) a call without them and a context
    that lacks one of its needs."""
    import math

    import attrs

    from grefine_kit.errors import UserError
    from grefine_kit.metrics import Metric
    from grefine_kit.metrics.base import METRIC_NEEDS, metric_needs, score_with

    assert isinstance(metric, Metric), f"{metric!r} does not follow the Metric protocol"
    assert isinstance(metric.name, str) and metric.name, "name must be a non-empty string"
    assert isinstance(metric.lower_better, bool), "lower_better must be a bool"
    assert isinstance(metric.needs_prompt, bool), "needs_prompt must be a bool"
    lo, hi = metric.score_range
    assert isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo < hi, (
        f"score_range must be (lo, hi) numbers with lo < hi; got {metric.score_range!r}"
    )
    needs = metric_needs(metric)
    assert needs <= set(METRIC_NEEDS), f"needs {sorted(needs)} must be among {METRIC_NEEDS}"
    images = sample_images()
    prompts = [prompt] * len(images) if metric.needs_prompt else None
    contexts = sample_contexts(images) if needs else None

    def score(
        batch: Sequence[Image.Image], texts: Sequence[str] | None, extra: Any = contexts
    ) -> list[float]:
        return score_with(metric, batch, texts, None if extra is None else extra[: len(batch)])

    values = score(images, prompts)
    assert isinstance(values, list) and len(values) == len(images), "score() must return one value per image"
    assert all(isinstance(v, float) and math.isfinite(v) for v in values), (
        f"values must be finite floats: {values}"
    )
    slack = 1e-6 * max(1.0, abs(lo) if math.isfinite(lo) else 0.0, abs(hi) if math.isfinite(hi) else 0.0)
    assert all(lo - slack <= v <= hi + slack for v in values), (
        f"values {values} outside score_range {(lo, hi)}"
    )
    again = score(images, prompts)
    assert np.allclose(values, again, rtol=1e-5, atol=1e-6), "metric values must be deterministic"
    single = score(images[:1], prompts[:1] if prompts else None)
    assert np.allclose(single, values[:1], rtol=1e-4, atol=1e-5), "a value must not depend on the batch"
    assert score([], [] if metric.needs_prompt else None) == [], "score([]) must be []"
    declared: Any = metric  # a MetricBase: score takes contexts
    for need in sorted(needs):
        assert contexts is not None
        blank: dict[str, Any] = {need: None}
        lacking = [attrs.evolve(c, **blank) for c in contexts]
        for extra in (None, lacking):
            try:
                declared.score(images, prompts, extra)
            except UserError:
                pass
            else:
                raise AssertionError(f"a metric that needs {need} must raise UserError without it")
    if metric.needs_prompt:
        try:
            metric.score(images, None)
        except UserError:
            pass
        else:
            raise AssertionError("a metric with needs_prompt=True must raise UserError without prompts")
    return list(values)


def check_recipe(name_or_path: str) -> Recipe:
    """A recipe loads, builds every part (no weights load), and survives a dump/load round trip."""
    from grefine_kit.recipes.recipe import Recipe

    recipe = Recipe.load(name_or_path)
    recipe.validate()
    again = Recipe.loads(recipe.dump())
    assert again == recipe, "Recipe.loads(recipe.dump()) must give an equal recipe"
    return recipe


def check_part(kind: str, name: str, **options: Any) -> object:
    """Build a registered part by name, check its declared capabilities
    (:func:`~grefine_kit.testing.capabilities_check.check_capabilities`) and run its kind's
    conformance check; returns what that check returns (the recipe for kind ``recipe``, the
    part for ``engine``)."""
    from grefine_kit.parts.registry import get_registry

    if kind == "recipe":
        return check_recipe(name)
    part = get_registry().create(kind, name, options)
    if kind == "engine":
        import tempfile

        from grefine_kit.testing.engine_check import check_engine

        with tempfile.TemporaryDirectory() as tmp:
            check_engine(part, tmp)
        return part
    checks: dict[str, Callable[[Any], Any]] = {
        "indicator": check_indicator,
        "parser": check_parser,
        "combiner": check_combiner,
        "regions": check_regions,
        "stage": check_stage,
        "metric": check_metric,
    }
    if kind not in checks:
        raise ValueError(f"no conformance check for kind {kind!r}")
    from grefine_kit.testing.capabilities_check import check_capabilities

    check_capabilities(part)
    return checks[kind](part)
