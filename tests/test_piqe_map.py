"""piqe-map: PIQE from the paper plus the loss-of-detail term, on a real AIGI with planted defects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from grefine_kit.combiners.g_refine import GRefineCombiner
from grefine_kit.errors import UserError
from grefine_kit.images.loading import load_image
from grefine_kit.indicators.piqe import grey_levels, piqe
from grefine_kit.indicators.piqe_map import PiqeMap, detail_loss
from grefine_kit.parts.registry import get_registry
from grefine_kit.parts.roles import PERCEPTUAL
from grefine_kit.testing import check_part

DATA = Path(__file__).parent / "data"
#: the planted region: 256x256 = 1/16 of the 1024x1024 image, over the eyes and forehead
X0, Y0, SIDE = 400, 300, 256
#: the combiner settings of the piqe-demo recipe (block-accurate maps need less growth)
COMBINER = GRefineCombiner(grow=0.01, feather=0.01)


@pytest.fixture(scope="module")
def example() -> Image.Image:
    return load_image(DATA / "perceptual-example.jpg")


def _truth() -> np.ndarray:
    truth = np.zeros((1024, 1024), bool)
    truth[Y0 : Y0 + SIDE, X0 : X0 + SIDE] = True
    return truth


def _with_noise(image: Image.Image) -> Image.Image:
    arr = np.asarray(image, np.float64)
    rng = np.random.default_rng(0)
    patch = arr[Y0 : Y0 + SIDE, X0 : X0 + SIDE]
    arr[Y0 : Y0 + SIDE, X0 : X0 + SIDE] = patch + rng.normal(0.0, 25.0, patch.shape)  # sigma 25/255
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


def _with_blur(image: Image.Image, radius: float = 3.0) -> Image.Image:
    blurred = image.filter(ImageFilter.GaussianBlur(radius))
    out = image.copy()
    box = (X0, Y0, X0 + SIDE, Y0 + SIDE)
    out.paste(blurred.crop(box), box)
    return out


def _overlap(image: Image.Image, indicator: PiqeMap | None = None) -> tuple[float, float]:
    """(IoU of the g-refine mask with the planted region, fraction of the rest covered)."""
    qmap = (indicator or PiqeMap()).score([image])[0]
    mask = COMBINER.combine({PERCEPTUAL: qmap}, image.size).binary > 0
    truth = _truth()
    iou = float((mask & truth).sum() / (mask | truth).sum())
    return iou, float(mask[~truth].mean())


def test_noise_patch_is_found(example: Image.Image) -> None:
    iou, rest = _overlap(_with_noise(example))
    assert iou >= 0.5, iou
    assert rest < 0.3, rest


def test_blur_patch_is_found(example: Image.Image) -> None:
    iou, rest = _overlap(_with_blur(example))
    assert iou >= 0.5, iou
    assert rest < 0.3, rest


def test_clean_image_is_not_masked_there(example: Image.Image) -> None:
    # the control: without a planted defect the mask does not already sit on that region
    iou, rest = _overlap(example)
    assert iou < 0.3 and rest < 0.1, (iou, rest)


def test_blur_needs_the_detail_term(example: Image.Image) -> None:
    # PIQE alone judges the flattened blocks as inactive (= fine): the blur goes unseen
    iou, _ = _overlap(_with_blur(example), PiqeMap(detail=False))
    assert iou < 0.3, iou


def test_score_is_piqe_mapped(example: Image.Image) -> None:
    clean, noisy = PiqeMap().score([example, _with_noise(example)])
    assert clean.score == pytest.approx(1.0 - clean.details["piqe"] / 100.0)
    assert 0.0 < clean.details["piqe"] < 100.0
    assert noisy.details["piqe"] > clean.details["piqe"]  # lower PIQE = better
    assert noisy.details["noise_fraction"] > clean.details["noise_fraction"]
    assert clean.indicator == "piqe-map" and clean.map.shape == (1024, 1024)
    blocks = noisy.details["noise_blocks"]
    inside = blocks[Y0 // 16 + 1 : (Y0 + SIDE) // 16 - 1, X0 // 16 + 1 : (X0 + SIDE) // 16 - 1]
    assert blocks.shape == (64, 64) and inside.mean() > 0.5 > blocks.mean()
    assert "noise_blocks" not in noisy.to_json()["details"]  # arrays stay out of reports


def test_piqe_criteria_on_synthetic_blocks() -> None:
    rng = np.random.default_rng(1)
    flat = piqe(np.full((64, 64), 128.0))
    assert not flat.active.any() and flat.score == 100.0  # no active block: no evidence of quality
    noise = piqe(np.clip(128 + rng.normal(0, 25, (64, 64)), 0, 255))
    assert noise.active.all() and noise.noise.mean() > 0.5
    # a busy block whose border has a flat run: the noticeable-artifact criterion
    blocky = np.clip(128 + rng.normal(0, 25, (64, 64)), 0, 255)
    blocky[16:32, 16:22] = blocky[16:32, 16:22].mean()  # a flat 6-px strip on one edge
    assert piqe(blocky).artifact[1, 1]


def test_detail_loss_rule() -> None:
    energy = np.full((9, 9), 16.0, np.float32)
    energy[4, 4] = 16.0 * 0.2**2  # amplitude ratio 0.2 < lost: full loss
    energy[1, 1] = 16.0 * 0.375**2  # halfway between lost (0.25) and keep (0.5)
    loss = detail_loss(energy, radius=3)
    assert loss[4, 4] == 1.0 and loss[1, 1] == pytest.approx(0.5, abs=1e-5)
    assert loss[0, 8] == 0.0
    # nothing to lose around a flat area
    assert not detail_loss(energy / 100.0, radius=3).any()


def test_conformance_and_tiny_images() -> None:
    check_part("indicator", "piqe-map")
    tiny = PiqeMap().score([Image.new("RGB", (17, 9), (10, 200, 30))])[0]
    assert tiny.map.shape == (9, 17)


def test_options_are_checked() -> None:
    with pytest.raises(UserError, match="detail_lost"):
        get_registry().create("indicator", "piqe-map", {"detail_lost": 0.6})
    with pytest.raises(UserError, match="boolean"):
        get_registry().create("indicator", "piqe-map", {"smooth": True})
    with pytest.raises(UserError, match="no option"):
        get_registry().create("indicator", "piqe-map", {"model": "x"})


def test_max_side_keeps_the_output_size(example: Image.Image) -> None:
    q = PiqeMap(max_side=512).score([example.resize((1000, 600))])[0]
    assert q.map.shape == (600, 1000) and q.details["scored_size"] == [512, 307]


def test_grey_levels_shape_error() -> None:
    with pytest.raises(ValueError):
        grey_levels(np.zeros((4, 4, 2)))


def test_evaluate_ranks_noise_levels(example: Image.Image, tmp_path: Path) -> None:
    # `grefine evaluate --indicator piqe-map`: more noise, lower MOS, lower score
    from click.testing import CliRunner

    from grefine_kit.cli import cli

    arr = np.asarray(example, np.float64)
    rng = np.random.default_rng(0)
    rows = ["image,mos"]
    for i, sigma in enumerate((0, 10, 25, 50)):
        noisy = np.clip(arr + rng.normal(0, sigma, arr.shape) + 0.5, 0, 255).astype(np.uint8)
        Image.fromarray(noisy, "RGB").save(tmp_path / f"n{i}.png")
        rows.append(f"n{i}.png,{5 - i}")
    (tmp_path / "mos.csv").write_text("\n".join(rows) + "\n")
    args = ["evaluate", str(tmp_path / "mos.csv"), "--indicator", "piqe-map", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "SRCC 1.0000" in result.stdout and "4/4 images" in result.stdout


def test_neighbourhood_median_is_exact_at_its_samples() -> None:
    from numpy.lib.stride_tricks import sliding_window_view

    from grefine_kit.indicators.piqe_map import _neighbourhood_median

    energy = np.random.default_rng(2).random((50, 70)).astype(np.float32)
    got = _neighbourhood_median(energy, 16)  # sampled every 4th block, interpolated between
    windows = sliding_window_view(np.pad(energy, 16, mode="reflect"), (33, 33))
    exact = np.median(windows.reshape(50, 70, -1), axis=-1)
    np.testing.assert_allclose(got[::4, ::4], exact[::4, ::4], atol=1e-6)
    assert np.abs(got - exact).max() < 0.1  # a smooth reference in between


def test_piqe_grey_levels_are_matlab_rgb2gray_rounded() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    # 0.298936 * 255 = 76.23, 0.587043 * 255 = 149.70, 0.114021 * 255 = 29.08, 18.17
    assert grey_levels(rgb).tolist() == [[76.0, 150.0, 29.0, 18.0]]


def test_piqe_pools_the_official_block_distortion() -> None:
    rng = np.random.default_rng(3)
    grey = np.clip(128 + rng.normal(0, 20, (96, 80)), 0, 255).round()  # top half: noise
    grey[48:, :] = np.where((np.arange(80) % 16) >= 8, 200.0, 100.0)  # bottom: a step in each block
    result = piqe(grey)
    a, n, v = result.artifact, result.noise, result.variance.astype(np.float64)
    assert n[:3].all() and (a & ~n)[3:].all()  # noise above; flat edges, no noise below
    d = a * (1.0 - v) + n * v
    expected = 100.0 * (d[result.active].sum() + 1.0) / (result.active.sum() + 1.0)
    assert result.score == pytest.approx(expected, abs=1e-3)
    np.testing.assert_allclose(result.distortion, d, atol=1e-5)


def test_piqe_pads_odd_sizes_by_mirroring() -> None:
    rng = np.random.default_rng(4)
    grey = np.clip(128 + rng.normal(0, 25, (40, 50)), 0, 255).round()
    result = piqe(grey)
    assert result.active.shape == (3, 4)  # ceil(40/16) x ceil(50/16): the padding is judged too
    mirrored = np.pad(grey, ((0, 8), (0, 14)), mode="symmetric")
    assert result.score == piqe(mirrored).score
