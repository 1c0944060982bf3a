"""Full-reference fidelity: PSNR, SSIM (whole image or over a region) and mask IoU, pure numpy.

Definitions (the values papers report; checked against the official numbers of pyiqa's
calibration pairs by ``tests/test_fidelity.py``):

- **PSNR** (:func:`psnr`): ``10·log10(255² / MSE)`` with the MSE over the R, G and B values
  (0..255, no colour conversion) of the counted pixels, as scikit-image's
  ``peak_signal_noise_ratio`` on RGB uint8. Identical pixels give ``+inf``.
- **SSIM, canonical** (:func:`ssim`, ``convention="canonical"``): Wang et al.'s reference code
  ``ssim_index.m`` (the 2004 paper's): luma by BT.601 (``0.298936·R + 0.587043·G +
  0.114021·B``, rounded to 0..255 as MATLAB's ``rgb2gray`` does on uint8), an 11×11 Gaussian
  window (σ = 1.5, normalised), ``K1 = 0.01``, ``K2 = 0.03``, ``L = 255``, population
  (co)variances and ``valid`` filtering: the SSIM map is ``(H − 10) × (W − 10)``; the score is
  its mean. This is the definition behind the published ("official") SSIM values of pyiqa's
  calibration pairs (0.6993 … 0.6519 on 512×384 images); it does not downsample.
- **SSIM, downsampled** (``convention="downsampled"``): Wang's later ``ssim.m`` (2009): the
  same, after downsampling both lumas by ``f = max(1, round(min(H, W)/256))`` (an ``f×f`` box
  average with mirrored edges, then every ``f``-th row and column, starting at the first).
  Identical to ``canonical`` for images whose shorter side is under 384 pixels. On the
  calibration pairs (``f = 2``) it gives 0.6423 for I03 where the official value is 0.6993.
- **SSIM, scikit-image** (``convention="skimage"``): ``structural_similarity`` with its
  defaults on RGB uint8: each of R, G, B on 0..255 (``data_range`` 255), a 7×7 uniform window,
  sample (co)variances (``N/(N−1)``), no downsampling, the map cropped by 3 pixels on each
  side (the pixels whose window lies inside the image), the mean over the three channels.

Regions: ``region`` is a bool ``H×W`` array, True = counted. PSNR counts exactly those pixels.
A region SSIM is the mean of the SSIM map over the region *at the map's resolution*:

1. downsampling (``downsampled``, ``f > 1``): the region is averaged by the same ``f×f`` box as the
   image and subsampled at the same pixels; a downsampled pixel is in the region when more
   than half of its box is, and on an exact half when its subsampled (top-left) pixel is. So a
   region and its complement split the downsampled pixels exactly;
2. the ``valid`` crop: map value ``(i, j)`` is the SSIM of the window centred on (downsampled)
   pixel ``(i + r, j + r)`` (``r = 5`` for the Gaussian window, 3 for skimage's); it counts
   when that centre is in the region.

A region with no pixel left after these steps is a ``UserError`` (it names the sizes), as is an
image too small for the window. :func:`ssim_unmasked` is the SSIM of a refined image against
the refiner's input over the pixels its mask left alone. :func:`mask_iou` compares two masks:
``|A∩B| / |A∪B|``, and 1.0 when both are empty.

Inputs: RGB PIL images or ``H×W×3`` uint8 arrays; anything else is a ``UserError``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from grefine_kit.errors import UserError
from grefine_kit.indicators.piqe import grey_levels

__all__ = [
    "CONVENTIONS",
    "as_region",
    "downsample_factor",
    "mask_iou",
    "psnr",
    "ssim",
    "ssim_map",
    "ssim_unmasked",
]

#: the SSIM conventions :func:`ssim` knows (see the module docstring)
CONVENTIONS = ("canonical", "downsampled", "skimage")

_L = 255.0
_K1, _K2 = 0.01, 0.03


def _rgb(image: Any, what: str) -> np.ndarray:
    """``image`` as an ``H×W×3`` uint8 array (PIL images are converted to RGB)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image) if not isinstance(image, np.ndarray) else image
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise UserError(
            f"{what}: expected an RGB image (H×W×3 uint8), got {arr.dtype} array of shape {arr.shape}"
        )
    return arr


def _pair(output: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    out, ref = _rgb(output, "output"), _rgb(reference, "reference")
    if out.shape != ref.shape:
        raise UserError(
            f"the reference is {ref.shape[1]}×{ref.shape[0]} but the output is {out.shape[1]}×{out.shape[0]}"
        )
    return out, ref


def as_region(region: Any, shape: tuple[int, int] | None = None, what: str = "region") -> np.ndarray:
    """``region`` as a bool ``H×W`` array (of ``shape`` when given). Bool arrays pass as they
    are; numeric arrays whose only values are 0 and 1 are accepted (1 = True); anything else is
    a ``UserError``."""
    arr = np.asarray(region)
    if arr.ndim != 2 or (shape is not None and arr.shape != tuple(shape)):
        wanted = f"shape {tuple(shape)}" if shape is not None else "2 dimensions"
        raise UserError(f"{what}: expected a mask of {wanted} (H×W), got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise UserError(
            f"{what}: expected a bool mask (or 0/1 values), got {arr.dtype} values other than 0 and 1"
        )
    return arr.astype(bool)


def psnr(output: Any, reference: Any, region: Any = None) -> float:
    """PSNR in dB of ``output`` against ``reference`` on RGB 0..255 (see the module docstring).

    ``region``: bool ``H×W``, True = counted; None = the whole image. Returns ``+inf`` when the
    counted pixels are identical. Raises ``UserError`` on other shapes, sizes or an empty region.
    """
    out, ref = _pair(output, reference)
    diff = out.astype(np.float64) - ref.astype(np.float64)
    if region is not None:
        mask = as_region(region, out.shape[:2])
        if not mask.any():
            raise UserError("psnr: the region has no pixels")
        diff = diff[mask]
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0.0 else 10.0 * math.log10(_L * _L / mse)


def downsample_factor(height: int, width: int) -> int:
    """``max(1, round(min(H, W)/256))`` with halves rounded up, as MATLAB's ``round``."""
    return max(1, math.floor(min(height, width) / 256 + 0.5))


def _box_down(arr: np.ndarray, f: int) -> np.ndarray:
    """MATLAB's ``imfilter(x, ones(f)/f², 'symmetric', 'same')`` then ``x(1:f:end, 1:f:end)``.

    ``imfilter`` puts an even kernel's origin at ``floor((f+1)/2)``, so output pixel ``i``
    averages input rows ``i − (c−1) .. i + f − c`` (``c`` that origin, 1-based)."""
    if f == 1:
        return arr
    before, after = (f + 1) // 2 - 1, f - (f + 1) // 2
    padded = np.pad(arr, ((before, after), (before, after)), mode="symmetric")
    height, width = arr.shape
    rows = np.zeros((height, padded.shape[1]))
    for k in range(f):
        rows += padded[k : k + height, :]
    box = np.zeros((height, width))
    for k in range(f):
        box += rows[:, k : k + width]
    return box[::f, ::f] / (f * f)


def _valid(arr: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation with the symmetric 1-D ``taps`` on both axes, ``valid`` part only."""
    from numpy.lib.stride_tricks import sliding_window_view

    rows = sliding_window_view(arr, len(taps), axis=0) @ taps  # (H - n + 1, W)
    return np.asarray(sliding_window_view(rows, len(taps), axis=1) @ taps)


def _gaussian_taps(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    taps = np.exp(-(x * x) / (2 * sigma * sigma))
    return taps / taps.sum()  # the 2-D window is the outer product: fspecial's, normalised


def _ssim_plane(x: np.ndarray, y: np.ndarray, taps: np.ndarray, sample_cov: bool) -> np.ndarray:
    n = len(taps)
    norm = n * n / (n * n - 1.0) if sample_cov else 1.0
    mu_x, mu_y = _valid(x, taps), _valid(y, taps)
    var_x = (_valid(x * x, taps) - mu_x * mu_x) * norm
    var_y = (_valid(y * y, taps) - mu_y * mu_y) * norm
    cov = (_valid(x * y, taps) - mu_x * mu_y) * norm
    c1, c2 = (_K1 * _L) ** 2, (_K2 * _L) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )


def _region_down(mask: np.ndarray, f: int) -> np.ndarray:
    """The region at the downsampled resolution (rule 1 of the module docstring)."""
    if f == 1:
        return mask
    share = _box_down(mask.astype(np.float64), f)
    tie = np.isclose(share, 0.5)
    return np.where(tie, mask[::f, ::f], share > 0.5)


def ssim_map(output: Any, reference: Any, convention: str = "canonical") -> tuple[np.ndarray, int, int]:
    """The SSIM map, the downsampling factor ``f`` and the crop ``r`` (map value ``(i, j)``
    belongs to downsampled pixel ``(i + r, j + r)``). For ``skimage`` the map is the mean of
    the three channels' maps (its mean is then the channel mean of the scores)."""
    if convention not in CONVENTIONS:
        raise UserError(f"ssim: unknown convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    out, ref = _pair(output, reference)
    height, width = out.shape[:2]
    if convention != "skimage":
        f = downsample_factor(height, width) if convention == "downsampled" else 1
        taps, sample_cov = _gaussian_taps(), False
        planes = [grey_levels(arr).astype(np.float64) for arr in (out, ref)]  # whole levels: exact
        planes = [_box_down(p, f) for p in planes]
    else:
        f, taps, sample_cov = 1, np.full(7, 1.0 / 7), True
        planes = [arr.astype(np.float64) for arr in (out, ref)]
    size = planes[0].shape[:2]
    if min(size) < len(taps):
        raise UserError(
            f"ssim: the image is too small ({width}×{height}; {size[1]}×{size[0]} after downsampling by {f}) "
            f"for the {len(taps)}×{len(taps)} window"
        )
    if convention != "skimage":
        smap = _ssim_plane(planes[0], planes[1], taps, sample_cov)
    else:
        smap = np.mean(
            [_ssim_plane(planes[0][..., c], planes[1][..., c], taps, sample_cov) for c in range(3)], axis=0
        )
    return smap, f, (len(taps) - 1) // 2


def ssim(output: Any, reference: Any, region: Any = None, convention: str = "canonical") -> float:
    """SSIM of ``output`` against ``reference`` (see the module docstring for the conventions).

    ``region``: bool ``H×W`` (True = counted) or None for the whole image; a region SSIM is the
    mean of the SSIM map over the map pixels whose window centre is in the region. Raises
    ``UserError`` on bad shapes, an image smaller than the window, or a region with no map
    pixel left.
    """
    out, ref = _pair(output, reference)  # converted once; arrays pass through ssim_map as they are
    smap, f, r = ssim_map(out, ref, convention)
    if region is None:
        return float(smap.mean())
    height, width = out.shape[:2]
    mask = _region_down(as_region(region, (height, width)), f)
    inside = mask[r : r + smap.shape[0], r : r + smap.shape[1]]
    if not inside.any():
        raise UserError(
            f"ssim: the region leaves no pixel of the {smap.shape[1]}×{smap.shape[0]} SSIM map "
            f"(image {width}×{height}, downsampled by {f}, {r} pixels cropped per side)"
        )
    return float(smap[inside].mean())


def ssim_unmasked(output: Any, original: Any, mask: Any, convention: str = "canonical") -> float:
    """SSIM of ``output`` against ``original`` (the refiner's input) over the pixels ``mask``
    left alone. ``mask``: ``H×W``, True / values above 0.5 = repainted (a float mask such as
    ``Mask.binary`` works); an empty mask gives the whole-image SSIM. ``UserError`` when the
    mask leaves no SSIM-map pixel (see :func:`ssim`)."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise UserError(f"ssim-unmasked: expected an H×W mask, got shape {arr.shape}")
    keep = ~(arr > 0.5)
    return ssim(output, original, None if keep.all() else keep, convention=convention)


def mask_iou(mask: Any, region: Any) -> float:
    """Intersection over union of two bool ``H×W`` masks of one shape (0/1 arrays accepted);
    1.0 when both are empty. Raises ``UserError`` on other shapes or values."""
    a = as_region(mask, None, "mask")
    b = as_region(region, a.shape, "region")
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union
