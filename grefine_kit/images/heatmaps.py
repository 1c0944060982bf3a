"""Quality maps for people: resizing, colouring, heatmap overlays with a legend, ``.npy`` files.

Maps follow the house convention: float32 ``(H, W)`` in ``[0, 1]``, 1 = good; every colormap
shows bad regions in red (or black). See docs/images.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image

from grefine_kit.errors import UserError
from grefine_kit.images.loading import source_name, to_rgb

__all__ = [
    "COLORMAPS",
    "colorize_map",
    "legend_height",
    "overlay_heatmap",
    "resize_map",
    "save_map_npy",
    "upsample_blocks",
]


def _as_map(qmap: Any, what: str = "map") -> np.ndarray:
    arr = np.asarray(qmap, dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 2-D (H, W) array; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} must be finite (no NaN or inf)")
    if arr.min() < -1e-5 or arr.max() > 1 + 1e-5:
        raise ValueError(f"{what} values must lie in [0, 1]; got [{arr.min():.4g}, {arr.max():.4g}]")
    return np.clip(arr, 0.0, 1.0)


def resize_map(qmap: Any, size: tuple[int, int]) -> np.ndarray:
    """Resize an ``(H, W)`` map in ``[0, 1]`` to ``size = (width, height)`` (PIL order), bilinear.

    Returns a new float32 ``(height, width)`` array in ``[0, 1]``.
    """
    arr = _as_map(qmap)
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive (width, height); got {size}")
    if arr.shape == (h, w):
        return arr.copy()
    out = Image.fromarray(arr, "F").resize((w, h), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


# Colormaps are (position, (r, g, b)) control points over [0, 1], interpolated linearly, and
# applied so that RED always marks BAD regions: "turbo" (a turbo-like rainbow, dark blue ->
# cyan -> green -> yellow -> red) is applied to the deficiency 1 - q; "rdylgn" (red -> yellow
# -> green) to q itself; "gray" shows q as brightness (white = good).
_TURBO_POINTS: Final = (
    (0.00, (48, 18, 59)),
    (0.10, (70, 98, 216)),
    (0.20, (54, 170, 249)),
    (0.30, (26, 229, 182)),
    (0.40, (114, 254, 94)),
    (0.50, (164, 252, 60)),
    (0.60, (225, 221, 55)),
    (0.70, (254, 164, 49)),
    (0.80, (242, 93, 23)),
    (0.90, (196, 38, 4)),
    (1.00, (122, 4, 3)),
)
_RDYLGN_POINTS: Final = (
    (0.00, (165, 0, 38)),
    (0.25, (244, 109, 67)),
    (0.50, (255, 255, 191)),
    (0.75, (102, 189, 99)),
    (1.00, (0, 104, 55)),
)
_GRAY_POINTS: Final = ((0.0, (0, 0, 0)), (1.0, (255, 255, 255)))

COLORMAPS: Final = ("turbo", "rdylgn", "gray")
"""Colormap names for :func:`overlay_heatmap`; in each, red (or black) = bad, 1 = good."""


def _lut(points: Sequence[tuple[float, tuple[int, int, int]]], invert: bool) -> np.ndarray:
    """A (256, 3) uint8 lookup table indexed by round(q * 255)."""
    xs = np.array([p for p, _ in points])
    rgb = np.array([c for _, c in points], dtype=np.float64)
    q = np.linspace(0.0, 1.0, 256)
    t = 1.0 - q if invert else q
    return np.stack([np.interp(t, xs, rgb[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


_LUTS: Final = {
    "turbo": _lut(_TURBO_POINTS, invert=True),
    "rdylgn": _lut(_RDYLGN_POINTS, invert=False),
    "gray": _lut(_GRAY_POINTS, invert=False),
}


def colorize_map(qmap: Any, colormap: str = "turbo") -> np.ndarray:
    """Colour an ``(H, W)`` map in ``[0, 1]`` (1 = good): ``(H, W, 3)`` uint8, red = bad."""
    if colormap not in _LUTS:
        raise UserError(f"unknown colormap {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    idx = (_as_map(qmap) * 255.0 + 0.5).astype(np.uint8)
    return _LUTS[colormap][idx]


def overlay_heatmap(
    image: Image.Image, qmap: Any, alpha: float = 0.5, colormap: str = "turbo", *, legend: bool = False
) -> Image.Image:
    """Blend a coloured quality map over ``image``; returns a new RGB image.

    ``qmap``: ``(H, W)`` in ``[0, 1]``, 1 = good; resized (bilinear) when its shape differs
    from the image's. ``alpha`` in ``[0, 1]`` is the weight of the colours (0 = image only).
    With the default ``"turbo"`` colormap red/orange marks bad regions and blue good ones.
    The result has ``image.size``; with ``legend`` a colour bar (quality 0 = bad on the left,
    1 = good on the right) is appended below, so the image itself is never covered.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    base = image if image.mode == "RGB" else to_rgb(image, source_name(image))
    colours = colorize_map(resize_map(qmap, base.size), colormap)
    a = np.asarray(base, dtype=np.float32)
    out = a * (1.0 - alpha) + colours.astype(np.float32) * alpha
    blended = Image.fromarray((out + 0.5).astype(np.uint8), "RGB")
    return _with_legend(blended, colormap) if legend else blended


def legend_height(width: int) -> int:
    """Height in px of the legend strip ``overlay_heatmap(..., legend=True)`` adds to a
    ``width``-px image (grows with the image so that the labels stay legible)."""
    return max(18, min(48, width // 16))


def _with_legend(image: Image.Image, colormap: str) -> Image.Image:
    from PIL import ImageDraw, ImageFont

    w, h = image.size
    strip_h = legend_height(w)
    canvas = Image.new("RGB", (w, h + strip_h), (255, 255, 255))
    canvas.paste(image, (0, 0))
    font_size = max(8, strip_h // 2)
    try:
        font: Any = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(canvas)
    labels = ("0 bad", "1 good")
    widths = [draw.textlength(t, font=font) for t in labels]
    pad = 4
    bar_x0, bar_x1 = int(widths[0]) + 2 * pad, w - int(widths[1]) - 2 * pad
    bar_y0, bar_y1 = h + strip_h // 4, h + strip_h - strip_h // 4
    if bar_x1 - bar_x0 >= 8:  # room for a bar: ramp of the colormap from bad to good
        ramp = np.linspace(0.0, 1.0, bar_x1 - bar_x0, dtype=np.float32)[None, :]
        bar = colorize_map(np.repeat(ramp, bar_y1 - bar_y0, axis=0), colormap)
        canvas.paste(Image.fromarray(bar, "RGB"), (bar_x0, bar_y0))
        text_y = h + (strip_h - font_size) // 2
        draw.text((pad, text_y), labels[0], fill=(0, 0, 0), font=font)
        draw.text((bar_x1 + pad, text_y), labels[1], fill=(0, 0, 0), font=font)
    return canvas


def save_map_npy(path: str | os.PathLike[str], qmap: Any) -> Path:
    """Save a map as a float32 ``(H, W)`` ``.npy`` file (values in [0, 1], 1 = good).

    Creates the parent folder; returns the path written.
    """
    arr = _as_map(qmap)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:  # np.save(path) would append ".npy" to other suffixes
        np.save(f, arr, allow_pickle=False)
    return out


def upsample_blocks(values: np.ndarray, size: tuple[int, int], block: int) -> np.ndarray:
    """Per-block values ``(nby, nbx)`` -> a float32 map of ``size`` = ``(W, H)``: bilinear
    between block centres over the ``block``-px grid, edges repeated, cut to ``(H, W)`` (a side
    that is not a multiple of ``block`` was padded), clipped to [0, 1]."""
    w, h = size
    nby, nbx = values.shape
    up = Image.fromarray(values.astype(np.float32), "F").resize(
        (nbx * block, nby * block), Image.Resampling.BILINEAR
    )
    arr = np.asarray(up, np.float32)
    arr = np.pad(arr, ((0, max(0, h - arr.shape[0])), (0, max(0, w - arr.shape[1]))), mode="edge")
    return np.clip(arr[:h, :w], 0.0, 1.0)
