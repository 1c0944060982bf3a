"""Mask combiners: deficiency formula, threshold, growth, feathering, min_area, variants."""

from __future__ import annotations

import numpy as np
import pytest

from grefine_kit.combiners.g_refine import AlignmentCombiner, GRefineCombiner, PerceptualCombiner
from grefine_kit.combiners.soft import SoftCombiner
from grefine_kit.images.ops import box_mean, dilate
from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL
from grefine_kit.testing.conformance import check_combiner
from grefine_kit.types import QualityMap


def qmap(arr: np.ndarray) -> QualityMap:
    return QualityMap(map=arr.astype(np.float32), score=float(arr.mean()), indicator="test")


def by_role(perceptual: QualityMap | None, alignment: QualityMap | None) -> dict[str, QualityMap]:
    """The maps a combiner gets, by role (an absent role is left out)."""
    given = {PERCEPTUAL: perceptual, ALIGNMENT: alignment}
    return {r: m for r, m in given.items() if m is not None}


def ones(h: int, w: int) -> np.ndarray:
    return np.ones((h, w), np.float32)


@pytest.mark.parametrize("cls", [GRefineCombiner, PerceptualCombiner, AlignmentCombiner, SoftCombiner])
def test_conformance(cls: type) -> None:
    check_combiner(cls())


def test_deficiency_is_one_minus_p_plus_one_minus_a() -> None:
    rng = np.random.default_rng(1)
    p, a = rng.random((12, 20)), rng.random((12, 20))
    d = GRefineCombiner().deficiency(by_role(qmap(p), qmap(a)), (20, 12))
    np.testing.assert_allclose(d, (1 - p) + (1 - a), atol=1e-6)
    np.testing.assert_allclose(
        PerceptualCombiner().deficiency(by_role(qmap(p), qmap(a)), (20, 12)), 1 - p, atol=1e-6
    )
    np.testing.assert_allclose(
        AlignmentCombiner().deficiency(by_role(qmap(p), qmap(a)), (20, 12)), 1 - a, atol=1e-6
    )


def test_threshold_without_growth_is_exact_binarisation() -> None:
    p = ones(10, 10)
    p[2, 3] = 0.49  # D = 0.51 > 0.5
    p[5, 5] = 0.51  # D = 0.49
    a = ones(10, 10)
    a[8, 8] = 0.3  # alignment defect alone: D = 0.7
    mask = GRefineCombiner(grow=0, feather=0, min_area=0).combine(by_role(qmap(p), qmap(a)), (10, 10))
    expected = np.zeros((10, 10), np.float32)
    expected[2, 3] = expected[8, 8] = 1
    np.testing.assert_array_equal(mask.binary, expected)
    np.testing.assert_array_equal(mask.soft, expected)


def test_growth_radius_is_relative_to_shorter_side() -> None:
    p = ones(50, 100)
    p[25, 50] = 0.0
    mask = GRefineCombiner(grow=0.1, feather=0, min_area=0).combine(by_role(qmap(p), None), (100, 50))
    ys, xs = np.nonzero(mask.binary)
    # radius = 0.1 * 50 = 5 px -> an 11 x 11 square around the pixel
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (20, 30, 45, 55)
    assert mask.binary.sum() == 121


def test_feather_ramp_lies_outside_the_grown_mask_and_outside_is_zero() -> None:
    p = ones(80, 80)
    p[30:50, 30:50] = 0.0
    comb = GRefineCombiner(grow=0.05, feather=0.1, min_area=0)
    mask = comb.combine(by_role(qmap(p), None), (80, 80))
    grown = dilate((p < 0.5).astype(np.float32), 4)
    assert (mask.soft[grown > 0] == 1).all(), "the grown mask is repainted fully"
    assert (mask.soft[mask.binary == 0] == 0).all(), "no blending outside the binary mask"
    ramp = mask.soft[(mask.soft > 0) & (mask.soft < 1)]
    assert ramp.size > 0, "there is a blending ramp"
    # along a row through the centre the weight falls monotonically from the grown edge outwards
    row = mask.soft[40, 53:]  # the grown mask ends at x = 49 + 4
    assert (np.diff(row) <= 1e-6).all() and row[0] == 1 and row[-1] == 0
    # the ramp spans about `feather` (8 px) beyond the grown mask
    assert 6 <= int((row > 0).sum()) - 1 <= 9


def test_defect_touching_the_border_keeps_full_weight_there() -> None:
    p = ones(40, 40)
    p[:, :10] = 0.0
    mask = GRefineCombiner(grow=0.0, feather=0.2, min_area=0).combine(by_role(qmap(p), None), (40, 40))
    assert (mask.soft[:, 0] == 1).all()


def test_min_area_empties_specks() -> None:
    p = ones(100, 100)
    p[0, 0] = 0.0  # 1e-4 of the image
    assert not GRefineCombiner(min_area=0.001).combine(by_role(qmap(p), None), (100, 100)).binary.any()
    p[:10, :10] = 0.0  # 1e-2 of the image
    assert GRefineCombiner(min_area=0.001).combine(by_role(qmap(p), None), (100, 100)).binary.any()


def test_perfect_maps_give_empty_mask_and_terrible_maps_a_full_one() -> None:
    good = GRefineCombiner().combine(by_role(qmap(ones(24, 32)), qmap(ones(24, 32))), (32, 24))
    bad = GRefineCombiner().combine(by_role(qmap(0 * ones(24, 32)), qmap(0 * ones(24, 32))), (32, 24))
    assert good.area == 0 and bad.area == 1 and (bad.soft == 1).all()


def test_maps_at_another_size_are_resized() -> None:
    p = ones(10, 10)
    p[:, :5] = 0.0  # left half bad
    mask = GRefineCombiner(grow=0, feather=0).combine(by_role(qmap(p), None), (40, 20))
    assert mask.binary.shape == (20, 40)
    assert mask.binary[:, :18].all() and not mask.binary[:, 22:].any()


def test_variants_require_their_map() -> None:
    with pytest.raises(ValueError, match="perceptual"):
        PerceptualCombiner().combine(by_role(None, qmap(ones(4, 4))), (4, 4))
    with pytest.raises(ValueError, match="alignment"):
        AlignmentCombiner().combine(by_role(qmap(ones(4, 4)), None), (4, 4))
    # g-refine works with either map alone; a missing one adds no deficiency
    p = ones(8, 8)
    p[:4] = 0
    only_p = GRefineCombiner(grow=0, feather=0, min_area=0).combine(by_role(qmap(p), None), (8, 8))
    assert only_p.binary[:4].all() and not only_p.binary[4:].any()


def test_variants_ignore_the_other_map() -> None:
    p, a = ones(8, 8), ones(8, 8)
    p[:4] = 0.0
    a[:, :4] = 0.0
    kw = dict(grow=0, feather=0, min_area=0)
    perceptual = PerceptualCombiner(**kw).combine(by_role(qmap(p), qmap(a)), (8, 8))
    alignment = AlignmentCombiner(**kw).combine(by_role(qmap(p), qmap(a)), (8, 8))
    np.testing.assert_array_equal(perceptual.binary, (p < 0.5).astype(np.float32))
    np.testing.assert_array_equal(alignment.binary, (a < 0.5).astype(np.float32))


def test_soft_combiner_follows_the_deficiency_linearly() -> None:
    p = np.tile(np.linspace(1.0, 0.0, 11, dtype=np.float32), (3, 1))  # D = 0 .. 1 along x
    mask = SoftCombiner(low=0.2, high=0.8, feather=0, min_area=0).combine(by_role(qmap(p), None), (11, 3))
    d = 1 - p[0]
    expected = np.clip((d - 0.2) / 0.6, 0, 1)
    np.testing.assert_allclose(mask.soft[0], expected, atol=1e-6)
    np.testing.assert_array_equal(mask.binary[0], (expected > 0).astype(np.float32))
    with pytest.raises(ValueError):
        SoftCombiner(low=0.6, high=0.4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": -0.1},
        {"grow": 0.9},
        {"feather": -1},
        {"min_area": 2},
        {"threshold": True},
        {"grow": False},
    ],
)
def test_options_are_range_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises((ValueError, TypeError)):  # booleans are ints in Python: refused all the same
        GRefineCombiner(**kwargs)


def test_box_helpers() -> None:
    arr = np.zeros((9, 9), np.float32)
    arr[4, 4] = 1
    assert dilate(arr, 2).sum() == 25
    assert box_mean(arr, 1)[4, 4] == pytest.approx(1 / 9)
    assert box_mean(arr, 1)[2, 2] == 0
