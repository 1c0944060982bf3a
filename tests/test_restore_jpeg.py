"""restore's JPEG-aware deblocking: grid and quality detection, and the repair it enables."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from grefine_kit.indicators.defect_features import luma
from grefine_kit.stages import restore_jpeg as rj
from grefine_kit.stages.restore_methods import DEBLOCK_CHROMA_QUALITY, deblock


def _photo(size: int = 160) -> np.ndarray:
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, np.float64)


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a - b) ** 2)))


def test_quant_table_follows_the_ijg_scaling():
    assert np.array_equal(rj.quant_table(50), rj.LUMA_TABLE)
    assert rj.quant_table(10)[0, 0] == 80  # 16 × 500 %
    assert rj.quant_table(1).max() == 255 and rj.quant_table(100).min() == 1


@pytest.mark.parametrize(("oy", "ox"), [(0, 0), (3, 5)])
def test_grid_and_quality_are_found_on_a_cropped_jpeg(oy: int, ox: int):
    decoded = _jpeg(_photo(), 10)
    crop = decoded[8 - oy : 8 - oy + 120, 8 - ox : 8 - ox + 120]  # the grid starts at (oy, ox)
    y = luma(crop)
    assert rj.grid_offset(y) == (oy, ox)
    from scipy.fft import dctn

    blocks, _h, _w = rj._blocks(y - 128.0, oy, ox)
    assert rj.estimate_quality(dctn(blocks, axes=(-2, -1), norm="ortho")) == 10


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    from grefine_kit.defects.photos import builtin_photos

    return {p.name: p.image for p in builtin_photos()}  # as planted: <= 512 px


@pytest.mark.parametrize(
    ("photo", "quality", "corner"),
    [("retina", 8, (260, 300)), ("coffee", 8, (200, 150)), ("astronaut", 6, (200, 150))],
)
def test_the_quality_is_found_on_smooth_and_saturated_patches(
    photos: dict[str, Image.Image], photo: str, quality: int, corner: tuple
):
    """A smooth patch has few coefficients beyond one step, so a table twice as coarse fitted
    them when only those beyond half a step counted (retina: quality 4 for 8); saturated
    colours move the luma's coefficients by more than 1.5 DCT units (coffee, astronaut: no
    quality found). Counting from a quarter step and a tolerance relative to the step find
    all three."""
    from scipy.fft import dctn

    decoded = _jpeg(np.asarray(photos[photo].convert("RGB"), np.float64), quality)
    y0, x0 = corner
    y = luma(decoded[y0 : y0 + 96, x0 : x0 + 128])
    blocks, _h, _w = rj._blocks(y - 128.0, (-y0) % 8, (-x0) % 8)
    assert rj.estimate_quality(dctn(blocks, axes=(-2, -1), norm="ortho")) == quality


def test_no_quality_fits_an_image_that_is_not_a_jpeg():
    rng = np.random.default_rng(0)
    y = luma(np.clip(_photo(96) + rng.normal(0, 6, (96, 96, 3)), 0, 255))
    assert rj.jpeg_luma(y) is None


def test_jpeg_aware_deblock_beats_the_generic_one(monkeypatch: pytest.MonkeyPatch):
    from skimage import data

    clean = np.asarray(data.coffee(), np.float64)[100:292, 200:392]  # natural scale, as planted
    decoded = _jpeg(clean, 8)
    aware = deblock(decoded / 255.0) * 255.0
    monkeypatch.setattr(rj, "jpeg_luma_and_quality", lambda y, where=None: None)  # no grid / quality found
    generic = deblock(decoded / 255.0) * 255.0
    before, after, fallback = _psnr(decoded, clean), _psnr(aware, clean), _psnr(generic, clean)
    assert after >= before + 1.25  # measured +1.33 dB (TV in NLM's place: +1.19; generic: +0.67)
    assert after >= fallback + 0.3


def test_grid_contrast_reads_how_blocky_a_patch_is():
    from skimage import data

    clean = np.asarray(data.coffee(), np.float64)[100:292, 200:392]
    natural = rj.grid_contrast(luma(clean))
    heavy = rj.grid_contrast(luma(_jpeg(clean, 8)))
    mild = rj.grid_contrast(luma(_jpeg(clean, 70)))
    assert 0.9 < natural < 1.1 and heavy > 1.6 and natural < mild < heavy
    # counting within a region: a blocky box inside a clean picture
    boxed = clean.copy()
    boxed[64:128, 64:128] = _jpeg(clean, 8)[64:128, 64:128]
    where = np.zeros(clean.shape[:2], bool)
    where[64:128, 64:128] = True
    assert rj.grid_contrast(luma(boxed), where) > 1.6
    assert rj.grid_contrast(luma(boxed), ~where) < 1.1
    assert rj.grid_contrast(luma(boxed), np.zeros_like(where)) == 1.0  # nothing to read


@pytest.mark.parametrize("quality", [8, 70])
def test_the_generic_deblock_is_as_strong_as_the_blocking(monkeypatch: pytest.MonkeyPatch, quality: int):
    """Without a quality found, heavy blocking gets the strong smoother and mild blocking a
    light one: the strong one lost 2.4 dB (median) on quality-70 boxes."""
    from skimage import data

    from grefine_kit.stages import restore_methods as rm

    clean = np.asarray(data.coffee(), np.float64)[100:292, 200:392]
    decoded = _jpeg(clean, quality)
    monkeypatch.setattr(rj, "jpeg_luma_and_quality", lambda y, where=None: None)
    gain = _psnr(deblock(decoded / 255.0) * 255.0, clean) - _psnr(decoded, clean)
    monkeypatch.setattr(rm, "DEBLOCK_GENERIC", ((0.0, 0.03, 3.0),))  # always the strong one
    strong = _psnr(deblock(decoded / 255.0) * 255.0, clean) - _psnr(decoded, clean)
    if quality == 8:
        assert gain == strong and gain > 0.5  # measured +0.67 dB (contrast 2.38)
    else:
        assert gain > 0.2 and strong < -1.0  # measured +0.42 / -1.59 dB (contrast 1.14)


@pytest.mark.parametrize("quality", [10, 40])
def test_deblock_repairs_the_chroma_of_heavy_jpeg_only(quality: int):
    """The guided chroma repair is for coarse chroma quantisation: it runs up to quality 20 and
    keeps the chroma above (on 128-px boxes at quality 50 the repaired chroma lost 0.4 dB)."""
    from skimage import data
    from skimage.color import rgb2ycbcr

    clean = np.asarray(data.coffee(), np.float64)[100:292, 200:392]
    decoded = _jpeg(clean, quality)
    found = rj.jpeg_luma_and_quality(luma(decoded))
    assert found is not None and found[1] == quality
    out = deblock(decoded / 255.0) * 255.0
    chroma_change = np.abs(rgb2ycbcr(out / 255.0)[..., 1:] - rgb2ycbcr(decoded / 255.0)[..., 1:]).mean()
    if quality <= DEBLOCK_CHROMA_QUALITY:
        assert chroma_change > 0.5  # measured 2.15 (studio-range levels)
    else:
        assert chroma_change < 0.05  # measured 0.014: only the clipping to [0, 1] moves it
    assert _psnr(out, clean) > _psnr(decoded, clean)  # measured +1.37 / +0.41 dB


def test_a_loose_mask_still_gets_the_patchs_quality():
    """A mask grown past a JPEG patch covers clean pixels, which sit on no quantisation lattice;
    the stage fits the quality on the mask's core (restore.fit_area), so it repairs as with the
    exact mask: +1.67 dB both (fitted over the whole grown mask: +0.79 dB)."""
    from scipy import ndimage
    from skimage import data

    from grefine_kit.stages.base import StageRequest
    from grefine_kit.stages.restore import RestoreStage, fit_area
    from grefine_kit.types import Mask

    clean = np.asarray(data.coffee(), np.float64)[60:316, 150:406]  # 256 px, natural scale
    box = np.zeros((256, 256), bool)
    box[64:192, 64:192] = True
    planted = clean.copy()
    planted[64:192, 64:192] = _jpeg(clean, 8)[64:192, 64:192]  # on the image's own 8x8 grid
    loose = ndimage.binary_dilation(box, np.ones((49, 49), bool))  # 24 px of clean all round
    core = fit_area(loose)
    assert core.any() and not (core & ~box).any()

    def gain(area: np.ndarray) -> float:
        binary = area.astype(np.float32)
        request = StageRequest(
            image=Image.fromarray(planted.astype(np.uint8)),
            mask=Mask(binary=binary, soft=binary),
            strength=0.9,
        )
        out = np.asarray(RestoreStage(method="deblock").run(request).image, np.float64)
        return _psnr(out[box], clean[box]) - _psnr(planted[box], clean[box])

    exact, grown = gain(box), gain(loose)
    assert exact >= 1.0
    assert grown >= exact - 0.05


def _cat(size: int = 256) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea()).resize((size, size), Image.Resampling.LANCZOS)


def _restore_box(image: Image.Image, box: tuple[int, int, int, int]):
    from grefine_kit.stages.base import StageRequest
    from grefine_kit.stages.restore import RestoreStage
    from grefine_kit.types import Mask

    m = np.zeros((image.height, image.width), np.float32)
    m[box[1] : box[3], box[0] : box[2]] = 1.0
    return RestoreStage().run(StageRequest(image=image, mask=Mask(binary=m, soft=m), strength=0.9))


def test_blockiness_within_a_region_ignores_steps_across_its_border():
    """A blurred box whose sides lie on the 8-px grid: read over every pixel pair, the blocks
    along its right and bottom sides (which hold the grid line the box's border falls on) look
    blocky; read from the pairs inside the box, they do not."""
    from PIL import ImageFilter

    from grefine_kit.indicators.defect_features import BLOCK, blockiness, grid_phase, luma

    clean = _cat()
    image = clean.copy()
    box = (64, 64, 128, 128)
    image.paste(clean.filter(ImageFilter.GaussianBlur(3.0)).crop(box), box[:2])
    y = luma(np.asarray(image, np.float64))
    region = np.zeros(y.shape, bool)
    region[64:128, 64:128] = True
    phase = grid_phase(y)
    assert phase == (7, 7)
    everywhere = blockiness(y, phase)[4:8, 4:8]  # the box's 4 x 4 blocks
    within = blockiness(y, phase, region)[4:8, 4:8]
    # the bottom row holds the grid line of the box's bottom side (pixels 127 | 128)
    assert everywhere[-1].min() > 1.5  # measured 1.74
    assert within[-1].max() < 1.4  # measured 1.30
    # what auto compares with its 1.2 threshold: the upper quartile over the part
    assert np.percentile(everywhere, 75) > 1.5 and np.percentile(within, 75) < 1.2  # 1.81, 1.13
    # blocks that hold no border step read the same either way
    assert np.allclose(within[:3, :3], everywhere[:3, :3])
    assert blockiness(y, phase).shape == (256 // BLOCK, 256 // BLOCK)


@pytest.mark.parametrize(("side", "offset"), [(48, 0), (64, 0), (128, 0), (128, 3)])
def test_a_blurred_box_on_the_8px_grid_is_not_taken_for_jpeg(side: int, offset: int):
    """A blurred box whose sides lie on JPEG's 8-px grid puts steps on grid lines along its
    border; auto reads a part's blockiness from the pixel pairs inside it, so the box is
    deblurred (read over every pair it went to ``deblock`` and lost up to 0.9 dB; at 48 px on
    8 of 9 photos)."""
    from PIL import ImageFilter

    from grefine_kit.metrics.fidelity import psnr

    clean = _cat()
    box = (64 + offset, 64 + offset, 64 + side + offset, 64 + side + offset)
    image = clean.copy()
    image.paste(clean.filter(ImageFilter.GaussianBlur(3.0)).crop(box), box[:2])
    region = np.zeros((256, 256), bool)
    region[box[1] : box[3], box[0] : box[2]] = True
    result = _restore_box(image, box)
    assert result.details["methods"] == ["deblur"]
    assert psnr(result.image, clean, region) - psnr(image, clean, region) >= 0.5


@pytest.mark.parametrize("side", [48, 128])
def test_a_jpeg_box_on_the_8px_grid_is_still_deblocked(side: int):
    """Reading within the part keeps real blocking: a quality-10 patch on the grid is deblocked."""
    clean = _cat()
    buffer = io.BytesIO()
    clean.save(buffer, "JPEG", quality=10)
    box = (64, 64, 64 + side, 64 + side)
    image = clean.copy()
    image.paste(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").crop(box), box[:2])
    assert _restore_box(image, box).details["methods"] == ["deblock"]
