"""Full-reference fidelity (grefine_kit.metrics.fidelity): the published PSNR/SSIM values of the
calibration pairs, and the properties the region variants and mask IoU promise."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grefine_kit.errors import UserError
from grefine_kit.metrics.fidelity import downsample_factor, mask_iou, psnr, ssim, ssim_map

NAMES = ("I03", "I04", "I06", "I08", "I19")
# results_official.csv, rows psnr and ssim (the official implementations' values)
OFFICIAL_PSNR = (21.11, 20.99, 27.01, 23.30, 21.62)
OFFICIAL_SSIM = (0.6993, 0.9978, 0.9989, 0.9669, 0.6519)


def _calibration_dir() -> Path | None:
    """``../shared/data/iqa-calibration`` next to the checkout or one of its parents (CI has it
    beside the checkout); ``GREFINE_CALIBRATION_DIR`` overrides."""
    if os.environ.get("GREFINE_CALIBRATION_DIR"):
        return Path(os.environ["GREFINE_CALIBRATION_DIR"])
    root = Path(__file__).resolve().parents[1]
    for parent in root.parents:
        candidate = parent / "shared" / "data" / "iqa-calibration"
        if (candidate / "results_official.csv").is_file():
            return candidate
    return None


CALIBRATION = _calibration_dir()
needs_calibration = pytest.mark.skipif(
    CALIBRATION is None,
    reason="no IQA calibration pairs: ../shared/data/iqa-calibration (never copied into the repo) is absent",
)


def _pair(name: str) -> tuple[Image.Image, Image.Image]:
    assert CALIBRATION is not None
    return Image.open(CALIBRATION / "dist" / f"{name}.bmp"), Image.open(CALIBRATION / "ref" / f"{name}.bmp")


@needs_calibration
def test_official_values_are_the_ones_in_the_calibration_file():
    assert CALIBRATION is not None
    rows = {
        line.split(",")[0]: line.strip().split(",")[1:]
        for line in (CALIBRATION / "results_official.csv").open()
    }
    assert rows["Method"] == [f"{n}.bmp" for n in NAMES]
    assert tuple(float(v) for v in rows["psnr"]) == pytest.approx(OFFICIAL_PSNR)
    assert tuple(float(v) for v in rows["ssim"]) == pytest.approx(OFFICIAL_SSIM)


@needs_calibration
@pytest.mark.parametrize(("name", "official"), list(zip(NAMES, OFFICIAL_PSNR, strict=True)))
def test_psnr_reproduces_the_official_value(name: str, official: float):
    dist, ref = _pair(name)
    assert abs(psnr(dist, ref) - official) <= 0.01


@needs_calibration
@pytest.mark.parametrize(("name", "official"), list(zip(NAMES, OFFICIAL_SSIM, strict=True)))
def test_ssim_reproduces_the_official_value(name: str, official: float):
    dist, ref = _pair(name)
    assert abs(ssim(dist, ref) - official) <= 0.001


@needs_calibration
def test_the_other_conventions_differ_as_documented():
    dist, ref = _pair("I03")
    assert ssim(dist, ref, convention="skimage") == pytest.approx(0.6412, abs=1e-3)  # issue #25's figure
    assert ssim(dist, ref, convention="downsampled") == pytest.approx(0.6423, abs=1e-3)  # f = 2 here


# -- properties -------------------------------------------------------------------------------


def _images(seed: int = 0, size: tuple[int, int] = (48, 40)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    noise = rng.normal(0, 20, ref.shape)
    return np.clip(ref + noise, 0, 255).astype(np.uint8), ref


@pytest.mark.parametrize("convention", ["canonical", "downsampled", "skimage"])
def test_identical_images(convention: str):
    _, ref = _images()
    assert psnr(ref, ref) == math.inf
    assert ssim(ref, ref, convention=convention) == pytest.approx(1.0)
    assert ssim(Image.fromarray(ref), ref, convention=convention) == pytest.approx(1.0)


def test_psnr_by_hand_and_symmetric():
    out, ref = _images()
    mse = np.mean((out.astype(float) - ref.astype(float)) ** 2)
    assert psnr(out, ref) == pytest.approx(10 * math.log10(255**2 / mse))
    assert psnr(out, ref) == psnr(ref, out)
    one = ref.copy()
    one[0, 0, 0] ^= 1  # one value off by one: MSE = 1 / (H·W·3)
    assert psnr(one, ref) == pytest.approx(10 * math.log10(255**2 * ref.size))


@pytest.mark.parametrize("convention", ["canonical", "downsampled", "skimage"])
def test_ssim_is_symmetric_and_falls_with_noise(convention: str):
    out, ref = _images()
    assert ssim(out, ref, convention=convention) == pytest.approx(ssim(ref, out, convention=convention))
    rng = np.random.default_rng(1)
    worse = np.clip(ref + rng.normal(0, 60, ref.shape), 0, 255).astype(np.uint8)
    assert ssim(worse, ref, convention=convention) < ssim(out, ref, convention=convention) < 1.0


def test_skimage_convention_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    out, ref = _images(3, (37, 52))
    expected = metrics.structural_similarity(out, ref, channel_axis=2, data_range=255)
    assert ssim(out, ref, convention="skimage") == pytest.approx(expected, abs=1e-9)
    assert psnr(out, ref) == pytest.approx(metrics.peak_signal_noise_ratio(ref, out), abs=1e-9)


def test_downsampling_factor_and_block_average():
    assert downsample_factor(383, 1000) == 1
    assert downsample_factor(384, 512) == 2  # MATLAB's round: halves go up
    assert downsample_factor(639, 640) == 2
    assert downsample_factor(640, 640) == 3
    # f = 2 averages 2×2 blocks: an image made of constant 2×2 blocks is the block image
    rng = np.random.default_rng(2)
    small = rng.integers(0, 256, (200, 210, 3), dtype=np.uint8)
    noisy = np.clip(small + rng.normal(0, 15, small.shape), 0, 255).astype(np.uint8)
    big, big_noisy = (np.repeat(np.repeat(a, 2, 0), 2, 1) for a in (small, noisy))
    assert downsample_factor(*big.shape[:2]) == 2
    assert ssim(big_noisy, big, convention="downsampled") == pytest.approx(ssim(noisy, small), abs=1e-12)


def test_region_psnr_counts_only_the_region():
    out, ref = _images()
    region = np.zeros(ref.shape[:2], bool)
    region[10:20, 5:30] = True
    hurt = out.copy()
    hurt[~region] = 255 - hurt[~region]  # outside the region: changed, must not matter
    assert psnr(hurt, ref, region) == pytest.approx(psnr(out, ref, region))
    mse = np.mean((out[region].astype(float) - ref[region].astype(float)) ** 2)
    assert psnr(out, ref, region) == pytest.approx(10 * math.log10(255**2 / mse))
    assert psnr(out, ref, np.ones_like(region)) == pytest.approx(psnr(out, ref))
    assert psnr(out, ref, region.astype(np.uint8)) == psnr(out, ref, region)  # 0/1 arrays work too


@pytest.mark.parametrize("convention", ["canonical", "skimage"])
def test_region_ssim_is_the_map_mean_over_window_centres(convention: str):
    out, ref = _images(4, (40, 44))
    smap, f, r = ssim_map(out, ref, convention)
    assert f == 1 and smap.shape == (40 - 2 * r, 44 - 2 * r)
    region = np.zeros((40, 44), bool)
    region[r + 2 : r + 9, r + 4 : r + 12] = True
    assert ssim(out, ref, region, convention=convention) == pytest.approx(smap[2:9, 4:12].mean())
    assert ssim(out, ref, np.ones((40, 44), bool), convention=convention) == pytest.approx(smap.mean())
    # region and rest split the map: their pixel-weighted means give the whole mean
    inside, rest = (
        ssim(out, ref, region, convention=convention),
        ssim(out, ref, ~region, convention=convention),
    )
    n = 7 * 8
    assert (inside * n + rest * (smap.size - n)) / smap.size == pytest.approx(smap.mean())


def test_region_follows_the_downsampling_by_majority():
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 256, (400, 420, 3), dtype=np.uint8)
    out = np.clip(ref + rng.normal(0, 25, ref.shape), 0, 255).astype(np.uint8)
    smap, f, r = ssim_map(out, ref, "downsampled")
    assert f == 2 and smap.shape == (200 - 10, 210 - 10)
    region = np.zeros((400, 420), bool)
    region[40:80, 60:100] = True  # whole 2×2 blocks: downsampled rows 20..39, columns 30..49
    region[100, 100] = True  # a quarter of one block: left out
    assert ssim(out, ref, region, convention="downsampled") == pytest.approx(smap[15:35, 25:45].mean())
    # a region and its complement split the downsampled pixels exactly, halves included
    half = np.zeros((400, 420), bool)
    half[:, :201] = True  # column 200 halves the blocks of downsampled column 100
    inside, rest = (ssim(out, ref, m, convention="downsampled") for m in (half, ~half))
    cols = 101 - r  # map columns whose centre is in downsampled columns 5..100
    weighted = (inside * cols + rest * (smap.shape[1] - cols)) / smap.shape[1]
    assert weighted == pytest.approx(smap.mean())


def test_region_with_no_map_pixel_left_is_a_clear_error():
    out, ref = _images()
    edge = np.zeros(ref.shape[:2], bool)
    edge[:, :3] = True  # only pixels within the cropped border
    assert math.isfinite(psnr(out, ref, edge))
    with pytest.raises(UserError, match="no pixel of the"):
        ssim(out, ref, edge)
    with pytest.raises(UserError, match="no pixels"):
        psnr(out, ref, np.zeros(ref.shape[:2], bool))


def test_bad_inputs_are_user_errors():
    out, ref = _images()
    with pytest.raises(UserError, match="reference is"):
        psnr(out, ref[:-1])
    with pytest.raises(UserError, match="H×W×3 uint8"):
        ssim(out.astype(np.float32), ref)
    with pytest.raises(UserError, match="H×W×3 uint8"):
        psnr(out[..., 0], ref[..., 0])
    with pytest.raises(UserError, match="mask of shape"):
        psnr(out, ref, np.ones((3, 3), bool))
    with pytest.raises(UserError, match="other than 0 and 1"):
        ssim(out, ref, np.full(ref.shape[:2], 0.5))
    with pytest.raises(UserError, match="too small"):
        ssim(out[:10, :10], ref[:10, :10])
    with pytest.raises(UserError, match="unknown convention"):
        ssim(out, ref, convention="matlab")


def test_mask_iou():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    assert mask_iou(a, b) == 1.0  # both empty: documented as a perfect match
    a[0:4, 0:5] = True  # 20 pixels
    assert mask_iou(a, b) == 0.0
    b[2:6, 0:5] = True  # 20 pixels, 10 shared
    assert mask_iou(a, b) == pytest.approx(10 / 30)
    assert mask_iou(a, b) == mask_iou(b, a)
    assert mask_iou(a, a) == 1.0
    with pytest.raises(UserError, match="mask of shape"):
        mask_iou(a, b[:5])
    with pytest.raises(UserError, match="2 dimensions"):
        mask_iou(np.zeros(10, bool), b)
