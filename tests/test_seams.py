"""Seamless paste-back (issue 23, item 4): colour matching of a repaint to its surroundings and
the ``seam`` metric that shows whether it helps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from grefine_kit.errors import RecipeError, UserError
from grefine_kit.images.ops import match_colour
from grefine_kit.metrics.base import MetricContext, metric_needs, score_with
from grefine_kit.metrics.seam import Seam, border_pixels
from grefine_kit.recipes.recipe import Recipe
from grefine_kit.refiner.stage_runs import paste_back
from grefine_kit.testing.conformance import sample_images
from grefine_kit.types import QualityMap

H, W = 48, 64


def _ramp() -> np.ndarray:
    x = np.linspace(30, 220, W, dtype=np.float32)[None, :, None]
    return np.broadcast_to(x, (H, W, 3)).copy()


def _mask() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[12:36, 16:48] = True
    return m


def _seam(image: Image.Image, given: Image.Image, mask: np.ndarray) -> float:
    return Seam().score([image], None, [MetricContext(input=given, refiner_mask=mask)])[0]


def _img(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def test_seam_is_zero_without_change_and_positive_for_a_pasted_colour_shift() -> None:
    given, mask = _img(_ramp()), _mask()
    assert metric_needs(Seam()) == {"input", "refiner_mask"} and Seam.lower_better
    assert _seam(given, given, mask) == 0.0
    assert _seam(given, given, np.zeros((H, W), bool)) == 0.0, "no mask, no border, no seam"
    flat = np.full((H, W, 3), 100.0, np.float32)
    shifted = flat.copy()
    shifted[mask] += 40.0
    assert _seam(_img(shifted), _img(flat), mask) == pytest.approx(40 * np.sqrt(3))
    ramp = _ramp()
    ramp[mask] += 40.0
    assert _seam(_img(ramp), given, mask) > 20
    # the input's own edges along the border are not counted against the output
    edged = _ramp()
    edged[mask] = 10.0
    assert _seam(_img(edged), _img(edged), mask) == 0.0
    assert _seam(given, _img(edged), mask) > 20, "blending away an edge the input had counts too"
    with pytest.raises(UserError, match="needs input"):
        score_with(Seam(), [given], None, [MetricContext(refiner_mask=mask)])


def test_border_pixels_are_the_masks_inner_edge_not_the_images_edge() -> None:
    m = np.zeros((5, 6), bool)
    m[:, :3] = True  # touches the image's top, bottom and left edges
    border = border_pixels(m)
    assert border[:, 2].all() and not border[:, :2].any() and not border[:, 3:].any()


def test_colour_matching_removes_a_constant_drift_and_keeps_outside_pixels() -> None:
    original, mask = _ramp(), _mask()
    refined = original + np.array([25.0, -15.0, 5.0], np.float32)  # a drift everywhere
    refined[mask] += 7.0  # and a change of the repaint itself
    matched = match_colour(original, refined, mask, "mean", 4)
    assert np.allclose(matched[mask], original[mask] + 7.0, atol=1e-3)
    assert match_colour(original, refined, mask, "none", 4) is refined
    soft = mask.astype(np.float32)
    for mode in ("none", "mean", "local"):
        out = np.asarray(paste_back(_img(original), _img(refined), soft, mode, 4))
        assert np.array_equal(out[~mask], np.asarray(_img(original))[~mask]), "outside: exact"
    none = paste_back(_img(original), _img(refined), soft, "none")
    mean = paste_back(_img(original), _img(refined), soft, "mean", 4)
    # what is left is the repaint's own +7 step: the drift's part of the seam is gone
    assert _seam(mean, _img(original), mask) == pytest.approx(7 * np.sqrt(3), abs=0.5)
    assert _seam(none, _img(original), mask) == pytest.approx(np.hypot(np.hypot(32, -8), 12), abs=0.5)


def test_local_matching_follows_a_drift_that_differs_across_the_region() -> None:
    original, mask = _ramp(), _mask()
    drift = np.linspace(-40, 40, W, dtype=np.float32)[None, :, None]
    refined = original + drift
    mean = paste_back(_img(original), _img(refined), mask.astype(np.float32), "mean", 4)
    local = paste_back(_img(original), _img(refined), mask.astype(np.float32), "local", 4)
    given = _img(original)
    assert _seam(local, given, mask) < 0.5 * _seam(mean, given, mask)


class _Box:
    """Perceptual quality 0 in the image's central box, 1 elsewhere (a controlled map)."""

    needs_prompt = False

    def score(self, images: list[Image.Image], prompts: object = None) -> list[QualityMap]:
        out = []
        for im in images:
            m = np.ones((im.height, im.width), np.float32)
            m[im.height // 4 : 3 * im.height // 4, im.width // 4 : 3 * im.width // 4] = 0.0
            out.append(QualityMap(map=m, score=0.4))
        return out


def test_colour_match_is_a_checked_refiner_option_and_keeps_exactness_on_tiny_models() -> None:
    from grefine_kit.combiners.g_refine import GRefineCombiner
    from grefine_kit.refiner.refiner import Refiner
    from grefine_kit.stages.diffusion import InpaintStage

    data = Recipe.load("tiny").to_dict()
    with pytest.raises(RecipeError, match="colour_match"):
        Recipe.from_dict({**data, "refiner": {"colour_match": "lab"}})
    stage = InpaintStage(model="tiny", device="cpu")
    image = sample_images([(64, 48)])[0]
    outputs, seams = {}, {}
    for mode in ("none", "mean"):
        refiner = Refiner(
            perceptual=_Box(), combiner=GRefineCombiner(), stage1=stage, iterations=4, colour_match=mode
        )
        result = refiner.refine(image, "a red cube on a table", "m")
        inside = result.mask.binary > 0
        assert 0.2 < inside.mean() < 0.8 and result.report["stage1"]["steps_run"] > 0
        out = np.asarray(result.image)
        assert np.array_equal(out[~inside], np.asarray(image)[~inside]), "outside the mask: exact"
        outputs[mode] = out
        seams[mode] = _seam(result.image, image, inside)
    assert not np.array_equal(outputs["none"], outputs["mean"]), "matching changed the repaint"
    assert seams["mean"] != seams["none"]
