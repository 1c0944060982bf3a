"""Array operations on masks, maps and images: dilation, box filters, feathering, map resizing
and colour matching.

Pure numpy/PIL (box filters on integral images: cost independent of the radius, no scipy).
Used by the mask combiners, the region detector, the refiner's paste-back and the seam metric.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from grefine_kit.types import QualityMap

__all__ = [
    "COLOUR_MATCH_MODES",
    "at_size",
    "box_mean",
    "box_sum",
    "dilate",
    "feather",
    "match_colour",
]


def _box_sum(arr: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)^2 window around each pixel of an already padded array (valid part)."""
    k = 2 * radius + 1
    c = np.zeros((arr.shape[0] + 1, arr.shape[1] + 1), np.float64)
    c[1:, 1:] = arr.cumsum(0).cumsum(1)
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def dilate(binary: np.ndarray, radius: int) -> np.ndarray:
    """Grow a 0/1 ``(H, W)`` mask by a square of half-width ``radius`` px; float32 0/1 out."""
    if radius <= 0:
        return (binary > 0).astype(np.float32)
    padded = np.pad((binary > 0).astype(np.float64), radius)
    return (_box_sum(padded, radius) > 0.5).astype(np.float32)


def box_sum(arr: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)^2 window around each pixel of a ``(H, W)`` array, zeros beyond the
    edges; float64 out (exact for 0/1 masks)."""
    if radius <= 0:
        return arr.astype(np.float64)
    return _box_sum(np.pad(arr.astype(np.float64), radius), radius)


#: colour matching of a repaint to its surroundings at paste-back (see :func:`match_colour`)
COLOUR_MATCH_MODES = ("none", "mean", "local")


def match_colour(
    original: np.ndarray, refined: np.ndarray, binary: np.ndarray, mode: str, width: int
) -> np.ndarray:
    """``refined`` (float32 ``(H, W, 3)``, 0..255) shifted so that its colour agrees with
    ``original`` around the mask ``binary`` (1 = repainted).

    The *ring* is the pixels outside the mask within ``width`` px of it: there the stage was
    told to keep the original, so ``original − refined`` on the ring is the colour drift the
    pipeline brought (VAE round trip, a tone the model prefers), which shows as a seam once the
    repaint is pasted into untouched pixels. ``mean`` adds the ring's mean drift (per channel)
    to every pixel; ``local`` adds the drift of the ring pixels near each pixel (their mean
    within ``4 · width`` px; the ring's mean where none is that close), so a drift that differs
    from one side of the region to the other is followed. ``none``, an empty mask or an
    empty ring: ``refined`` as is. Only what is pasted changes: outside the mask the paste
    keeps the original pixels anyway.
    """
    if mode == "none":
        return refined
    if mode not in COLOUR_MATCH_MODES:
        raise ValueError(f"colour match must be one of {COLOUR_MATCH_MODES}, not {mode!r}")
    inside = binary > 0
    if not inside.any():
        return refined
    ring = (box_sum(inside.astype(np.float32), max(1, width)) > 0.5) & ~inside
    if not ring.any():
        return refined
    drift = (original.astype(np.float32) - refined) * ring[..., None]
    mean = drift.sum((0, 1)) / float(ring.sum())
    if mode == "mean":
        offset = np.broadcast_to(mean.astype(np.float32), refined.shape)
    else:
        reach = 4 * max(1, width)
        count = box_sum(ring.astype(np.float32), reach)
        local = np.stack([box_sum(drift[..., c], reach) for c in range(3)], -1)
        near = count > 0.5
        offset = np.where(near[..., None], local / np.maximum(count, 1.0)[..., None], mean)
    return np.clip(refined + offset, 0.0, 255.0).astype(np.float32)


def box_mean(arr: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges replicated (so a region touching the border stays at
    full weight there); support grows by exactly ``radius`` px. float32 out."""
    if radius <= 0:
        return arr.astype(np.float32)
    padded = np.pad(arr.astype(np.float64), radius, mode="edge")
    return (_box_sum(padded, radius) / float((2 * radius + 1) ** 2)).astype(np.float32)


def feather(core: np.ndarray, radius: int) -> np.ndarray:
    """Two box passes (radii r//2 and r - r//2): a smooth ramp whose support grows by exactly r."""
    r1 = radius // 2
    out = box_mean(box_mean(core, r1), radius - r1)
    out[out < 1e-6] = 0.0  # float round-off of the integral image must not leak outside the support
    return np.clip(out, 0.0, 1.0)


def at_size(qmap: QualityMap, size: tuple[int, int]) -> np.ndarray:
    """The map resized (bilinear) to ``size = (width, height)``; as is when it already fits."""
    w, h = size
    if qmap.map.shape == (h, w):
        return qmap.map
    resized = Image.fromarray(np.ascontiguousarray(qmap.map), "F").resize((w, h), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, np.float32), 0.0, 1.0)
