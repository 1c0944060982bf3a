"""Per-block evidence of three local defects (noise, blur, JPEG blocking), weight-free.

Each detector compares a block with the rest of *the same image*, so no training data or
weights are involved: a planted or accidental defect is a region whose statistics depart from
the image's own typical block. All work is on ``BLOCK``×``BLOCK`` px blocks (16) of the luma
``Y = 0.299 R + 0.587 G + 0.114 B`` or of the chroma differences (numpy + scipy.ndimage).

- **noise** (colour noise, independent per channel as a sensor's): the block's noise level
  ``σ`` by Donoho's robust estimator on the finest diagonal Haar band,
  ``σ = median(|HH|) / 0.6745``, of the chroma differences ``(R − G)/√2`` and ``(B − G)/√2``
  (the larger). Natural texture lives in the luma and barely shows there, so textured photos
  do not read as noisy; noise that is the same in R, G and B (grey noise) is not seen. Evidence
  ``(σ − t) / t`` clipped to [0, 1] with ``t = max(noise_ratio × m, m + noise_floor)``, ``m``
  the image's median block σ.
- **blur**: the re-blur test. Per block, ``R = max |∇Y| / max |∇(G_2 * Y)|``: how much the
  block's strongest gradient drops when the image is blurred by a further σ = 2 px
  (``REBLUR``). A sharp edge loses most of its gradient (``R`` about 2-3); an edge already
  blurred by σ keeps ``sqrt(σ² + 4)/σ`` of it (``R`` → 1). Only blocks with an edge count
  (``max |∇(G_2 * Y)| ≥ edge_floor``, fewer than ``CLIPPED_MAX`` clipped pixels: a blown
  highlight has no gradient of its own); ``R`` is replaced by its median over the 3×3
  neighbourhood's edge blocks (a median, not a mean, so the sharp blocks just outside a
  blurred patch do not pull its border blocks out of it: median blur mask-iou 0.52 → 0.71 on
  the benchmark set of docs/benchmark.md). Evidence ``(t − R) / (t − BLUR_FLOOR)`` clipped to [0, 1] with
  ``t = min(blur_sharp, blur_rel × median R)``: below an absolute sharpness and clearly below
  the image's own. An image that is soft all over (``t`` near 1) gets no blur evidence.
- **jpeg**: blocking on the 8-px grid. Per block, the mean absolute luma step across the grid
  lines inside it over the mean absolute step between other neighbouring pixels (each plus one
  grey level, so flat blocks read 1). Natural images give about 1 whatever the texture; heavy
  JPEG gives flat 8×8 cells with steps at their edges. Evidence ``(b − jpeg_ratio) /
  jpeg_ratio`` clipped to [0, 1]. The grid is JPEG's own (cells starting at pixel 0) unless
  another offset has clearly stronger steps (a JPEG cropped off its grid).

Every evidence map is then cleaned into regions (:func:`regions`): its 3×3 median (a flagged
block alone is dropped, so texture edges that fire one block are; a block missed inside a
region is filled in), with the corners of the regions it keeps put back. A corner block has
only 4 flagged blocks of 9 around it, so the median alone cut every region's corners off
(``grefine demo`` left specks of noise at two corners of its patch); a block of a flagged 2×2
square (the 2×2 opening) next to a block the median kept is kept. A region must span 2×3
blocks for the median to keep part of it; a 2×2 square alone is dropped.
"""

from __future__ import annotations

import attrs
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "BLOCK",
    "DEFECT_KINDS",
    "DefectEvidence",
    "blockiness",
    "defect_evidence",
    "gradient_magnitude",
    "grid_phase",
    "luma",
    "regions",
]

BLOCK = 16
JPEG_GRID = 8
#: the extra blur (px) of the blur detector's re-blur test
REBLUR = 2.0
#: blocks with more than this fraction of clipped pixels (luma <= 5 or >= 250) get no blur verdict
CLIPPED_MAX = 0.1
#: the re-blur ratio of an edge that is already very blurred (a step edge blurred by σ
#: keeps ``sqrt(σ² + REBLUR²) / σ`` of its gradient: 1.05 at σ = 6)
BLUR_FLOOR = 1.05
DEFECT_KINDS = ("noise", "blur", "jpeg")
#: the detectors' default thresholds, defect-map's (:class:`~grefine_kit.indicators.defect_map.DefectMap`
#: documents them): the restore stage reads the evidence with the same ones, so restore-global's
#: detected defect is defect-map's mask
NOISE_RATIO = 1.8
NOISE_FLOOR = 4.0
BLUR_SHARP = 1.6
BLUR_REL = 0.8
EDGE_FLOOR = 1.0
JPEG_RATIO = 1.3


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (JPEG's too) of an RGB ``(H, W, 3)`` array,
    float64 in its units (grey levels for 0..255)."""
    a = np.asarray(rgb, np.float64)
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def _blocks(arr: np.ndarray, size: int) -> np.ndarray:
    """``(nby, nbx, size, size)`` view of the whole blocks of a 2-D array."""
    h, w = (arr.shape[0] // size) * size, (arr.shape[1] // size) * size
    return arr[:h, :w].reshape(h // size, size, w // size, size).swapaxes(1, 2)


def _haar(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Finest-level Haar detail bands (HL, LH, HH) at half resolution, orthonormal scaling (an
    odd last row or column is dropped)."""
    arr = arr[: (arr.shape[0] // 2) * 2, : (arr.shape[1] // 2) * 2]
    a = arr[0::2, 0::2]
    b = arr[0::2, 1::2]
    c = arr[1::2, 0::2]
    d = arr[1::2, 1::2]
    return (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2


def _median3(values: np.ndarray) -> np.ndarray:
    padded = np.pad(values, 1, mode="edge")
    win = sliding_window_view(padded, (3, 3))
    return np.median(win.reshape(*values.shape, 9), axis=-1)


def regions(values: np.ndarray) -> np.ndarray:
    """Per-block evidence ``(nby, nbx)`` cleaned into regions: its 3×3 median, and where larger,
    its 2×2 grey opening (per block, the largest over the 2×2 squares holding it of the square's
    smallest value) capped by the median's 3×3 maximum, so only blocks next to a region the
    median kept come back: that region's corners. A lone block and a 2×2 square alone go."""
    from scipy import ndimage

    median = _median3(values)
    opened = ndimage.grey_opening(values, size=(2, 2), mode="nearest")
    near = ndimage.grey_dilation(median, size=(3, 3), mode="nearest")
    return np.maximum(median, np.minimum(opened, near))


def _noise_sigma(channel: np.ndarray) -> np.ndarray:
    hh = _haar(channel)[2]
    per = _blocks(np.abs(hh), BLOCK // 2)
    return np.median(per.reshape(*per.shape[:2], -1), axis=-1) / 0.6745


def gradient_magnitude(a: np.ndarray) -> np.ndarray:
    """``|∇a|`` of a 2-D float64 array by Sobel, in ``a``'s units per px (the Sobel sums / 8),
    same shape."""
    across = sobel(a, 1)
    np.hypot(across, sobel(a, 0), out=across)  # in place: no third image-sized array
    across /= 8.0
    return across


def sobel(a: np.ndarray, axis: int) -> np.ndarray:
    """``scipy.ndimage.sobel(a, axis)`` of a 2-D float64 array, bit for bit (edges mirrored,
    scipy's ``reflect``): the central difference ``[-1, 0, 1]`` along ``axis``, then the
    smoothing ``[1, 2, 1]`` across it, each as the sum scipy forms for a 3-tap (anti)symmetric
    kernel (``c - a``; ``(a + c) + 2 b``), from slices into two arrays (scipy's own count)."""
    if min(a.shape) < 2:  # a single row or column: no slices to take
        from scipy import ndimage

        return ndimage.sobel(a, axis)
    src = np.moveaxis(a, axis, 0)  # the difference runs along the first axis of these views
    step = np.empty_like(src)
    np.subtract(src[2:], src[:-2], out=step[1:-1])
    np.subtract(src[1], src[0], out=step[0])  # the mirrored neighbour is the pixel itself
    np.subtract(src[-1], src[-2], out=step[-1])
    out = np.empty_like(step)
    np.add(step[:, :-2], step[:, 2:], out=out[:, 1:-1])
    np.add(step[:, 0], step[:, 1], out=out[:, 0])
    np.add(step[:, -2], step[:, -1], out=out[:, -1])
    step *= 2.0  # exact: the sum below is scipy's (a + c) + 2 b
    out += step
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))


def _edge_sharpness(y: np.ndarray, edge_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Per block: ``max |∇Y| / max |∇(G_σ * Y)|`` with σ = ``REBLUR`` px, and whether the block
    has an edge (``max |∇(G_σ * Y)| >= edge_floor`` grey levels per px)."""
    from scipy import ndimage

    sharp = _blocks(gradient_magnitude(y), BLOCK).max(axis=(2, 3))
    soft = _blocks(gradient_magnitude(ndimage.gaussian_filter(y, REBLUR)), BLOCK).max(axis=(2, 3))
    # clipped pixels (blown highlights, crushed shadows) have no gradient of their own: a block
    # with many of them reads as blurred whatever its focus, so it is not judged
    clipped = _blocks(((y >= 250) | (y <= 5)).astype(np.float64), BLOCK).mean(axis=(2, 3))
    return sharp / np.maximum(soft, 1e-6), (soft >= edge_floor) & (clipped < CLIPPED_MAX)


def _masked_median3(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median of ``values`` over the valid blocks of each 3×3 neighbourhood (the mean of the
    middle two for an even count; the block's own value where none is valid)."""
    v = np.pad(np.where(valid, values, np.inf), 1, constant_values=np.inf)
    win = np.sort(sliding_window_view(v, (3, 3)).reshape(*values.shape, 9), axis=-1)
    n = sliding_window_view(np.pad(valid, 1), (3, 3)).sum(axis=(2, 3))
    lo = np.take_along_axis(win, np.maximum((n - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(win, (n // 2)[..., None], axis=-1)[..., 0]
    return np.where(n > 0, 0.5 * (lo + hi), values)


def grid_phase(y: np.ndarray) -> tuple[int, int]:
    """The 8-px grid's phase ``(column, row)``: the index mod 8 of the steps that lie across
    grid lines (a step ``i`` is between pixels ``i`` and ``i + 1``). JPEG's own (7: steps between
    pixels 8k + 7 and 8k + 8) unless another offset has clearly stronger steps (a JPEG cropped
    off its grid)."""
    dx = np.abs(np.diff(y, axis=1))
    dy = np.abs(np.diff(y, axis=0))
    px, py = JPEG_GRID - 1, JPEG_GRID - 1
    if dx.shape[1] > 2 * JPEG_GRID:
        cols = [dx[:, k::JPEG_GRID].mean() for k in range(JPEG_GRID)]
        if max(cols) > 1.1 * cols[px]:
            px = int(np.argmax(cols))
    if dy.shape[0] > 2 * JPEG_GRID:
        rows = [dy[k::JPEG_GRID, :].mean() for k in range(JPEG_GRID)]
        if max(rows) > 1.1 * rows[py]:
            py = int(np.argmax(rows))
    return px, py


def blockiness(y: np.ndarray, phase: tuple[int, int], within: np.ndarray | None = None) -> np.ndarray:
    """Per ``BLOCK`` block of the luma ``y``: mean |step| across the 8-px grid lines (``phase``,
    see :func:`grid_phase`; it is relative to ``y``'s first row and column) / (mean |step|
    elsewhere + 1). ``within`` (bool, ``y``'s shape): count only the steps between two pixels
    that both lie in it, so a step across a region's own border (a blurred box whose sides lie
    on the grid) is not read as blocking inside it."""
    dx = np.abs(np.diff(y, axis=1))  # step between column j and j+1
    dy = np.abs(np.diff(y, axis=0))
    valid_x = np.ones(dx.shape, bool) if within is None else within[:, :-1] & within[:, 1:]
    valid_y = np.ones(dy.shape, bool) if within is None else within[:-1, :] & within[1:, :]
    on_x = ((np.arange(dx.shape[1]) % JPEG_GRID) == phase[0])[None, :]
    on_y = ((np.arange(dy.shape[0]) % JPEG_GRID) == phase[1])[:, None]

    def block_sum(a: np.ndarray, axis: int) -> np.ndarray:
        padded = np.pad(a, ((0, 0), (0, 1)) if axis == 1 else ((0, 1), (0, 0)))
        return _blocks(padded, BLOCK).sum(axis=(2, 3))

    grid_x, grid_y = valid_x & on_x, valid_y & on_y
    rest_x, rest_y = valid_x & ~on_x, valid_y & ~on_y
    g = (block_sum(dx * grid_x, 1) + block_sum(dy * grid_y, 0)) / np.maximum(
        block_sum(grid_x * 1.0, 1) + block_sum(grid_y * 1.0, 0), 1
    )
    i = (block_sum(dx * rest_x, 1) + block_sum(dy * rest_y, 0)) / np.maximum(
        block_sum(rest_x * 1.0, 1) + block_sum(rest_y * 1.0, 0), 1
    )
    return np.asarray((g + 1.0) / (i + 1.0))


@attrs.frozen
class DefectEvidence:
    """Per-block evidence in [0, 1] for each kind (``(nby, nbx)`` arrays over the whole
    ``BLOCK`` blocks), and the raw measures they came from (for analysis and tests)."""

    noise: np.ndarray = attrs.field(eq=False, repr=False)
    blur: np.ndarray = attrs.field(eq=False, repr=False)
    jpeg: np.ndarray = attrs.field(eq=False, repr=False)
    sigma: np.ndarray = attrs.field(eq=False, repr=False)
    sharpness: np.ndarray = attrs.field(eq=False, repr=False)
    edges: np.ndarray = attrs.field(eq=False, repr=False)
    blockiness: np.ndarray = attrs.field(eq=False, repr=False)
    #: the 8-px grid's phase the blockiness was read on (:func:`grid_phase`)
    phase: tuple[int, int] = (JPEG_GRID - 1, JPEG_GRID - 1)

    def kind(self, name: str) -> np.ndarray:
        return {"noise": self.noise, "blur": self.blur, "jpeg": self.jpeg}[name]

    def combined(self) -> np.ndarray:
        """The largest evidence of the three per block."""
        return np.maximum(np.maximum(self.noise, self.blur), self.jpeg)


def defect_evidence(
    rgb: np.ndarray,
    *,
    noise_ratio: float = NOISE_RATIO,
    noise_floor: float = NOISE_FLOOR,
    blur_sharp: float = BLUR_SHARP,
    blur_rel: float = BLUR_REL,
    edge_floor: float = EDGE_FLOOR,
    jpeg_ratio: float = JPEG_RATIO,
    smooth: bool = True,
) -> DefectEvidence:
    """Evidence per block for an RGB ``(H, W, 3)`` array of at least ``BLOCK``×``BLOCK`` px."""
    a = np.asarray(rgb, np.float64)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < BLOCK or a.shape[1] < BLOCK:
        raise ValueError(f"defect_evidence needs an RGB image of at least {BLOCK}x{BLOCK} px; got {a.shape}")
    y = luma(a)
    # noise: the largest of luma and the chroma differences (scaled to comparable units)
    sig = np.maximum(
        _noise_sigma(a[..., 0] - a[..., 1]) / np.sqrt(2.0),
        _noise_sigma(a[..., 2] - a[..., 1]) / np.sqrt(2.0),
    )
    typical = float(np.median(sig))
    t = max(noise_ratio * typical, typical + noise_floor)
    noise = np.clip((sig - t) / t, 0.0, 1.0)
    # blur: how much the strongest gradient of each block drops when the image is blurred more
    sharpness, edges = _edge_sharpness(y, edge_floor)
    shape = (min(sig.shape[0], sharpness.shape[0]), min(sig.shape[1], sharpness.shape[1]))
    sharpness, edges, sig, noise = (m[: shape[0], : shape[1]] for m in (sharpness, edges, sig, noise))
    blur = np.zeros(shape)
    if edges.sum() >= 4:
        local = np.exp(_masked_median3(np.log(np.maximum(sharpness, 1e-6)), edges))
        t = min(blur_sharp, blur_rel * float(np.median(sharpness[edges])))
        if t > BLUR_FLOOR + 0.05:
            blur = np.clip((t - local) / (t - BLUR_FLOOR), 0.0, 1.0)
        near = sliding_window_view(np.pad(edges, 1), (3, 3)).any(axis=(2, 3))
        blur[~near] = 0.0
    # JPEG blocking
    phase = grid_phase(y)
    b = blockiness(y, phase)[: shape[0], : shape[1]]
    jpeg = np.clip((b - jpeg_ratio) / jpeg_ratio, 0.0, 1.0)
    maps = [noise, blur, jpeg]
    if smooth:
        maps = [regions(m) for m in maps]
    return DefectEvidence(
        noise=maps[0].astype(np.float32),
        blur=maps[1].astype(np.float32),
        jpeg=maps[2].astype(np.float32),
        sigma=sig.astype(np.float32),
        sharpness=sharpness.astype(np.float32),
        edges=edges,
        blockiness=b.astype(np.float32),
        phase=phase,
    )
