"""JPEG-aware luma deblocking for ``restore``'s ``deblock`` method: grid, quality, requantisation.

A JPEG patch keeps two traces that a generic smoother ignores: its 8×8 block grid, and the
quantisation step of every DCT frequency (the IJG tables of Annex K scaled by the quality, as
libjpeg and Pillow write them). :func:`jpeg_luma` finds both on the pixels to repair and, when
they are found, estimates the luma as the average, over 16 shifts of the 8×8 grid (every second
shift each way), of "block DCT → requantise with the estimated table → inverse DCT"
(re-application of JPEG, Nosratinia 2001): on the planted JPEG patches of docs/benchmark.md it
removes block edges while keeping the texture the quantiser kept. Without a grid or a quality
that fits, it returns None and ``deblock`` keeps its generic luma smoother.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "estimate_quality",
    "grid_contrast",
    "grid_offset",
    "jpeg_luma",
    "jpeg_luma_and_quality",
    "quant_table",
]

#: the standard luminance quantisation table (JPEG, ITU-T T.81 Annex K, table K.1), row-major
LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float64,
)
#: a quality fits when the coefficients' mean distance to its lattice, in units of each one's
#: step, is under this (data scattered uniformly: 0.25), or under ``FIT_ABS`` DCT units
#: (colour conversion and pixel rounding move a coefficient by about a unit)
FIT_REL = 0.1
FIT_ABS = 1.5
#: the finest steps of the table that the fit looks at, and how many coefficients it needs
FIT_FREQS = 12
FIT_MIN = 5
#: the fit is only trusted where the tested steps (median) are at least this: any data lie
#: within ``FIT_ABS`` of a fine lattice, a quarter of a coarse step is well beyond it (so
#: qualities above about 50 are not recognised, and ``deblock`` stays generic there)
MIN_STEP = 12.0


def quant_table(quality: int) -> np.ndarray:
    """The IJG luminance table at ``quality`` (1-100), steps clamped to [1, 255] (baseline)."""
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return np.clip(np.floor((LUMA_TABLE * scale + 50.0) / 100.0), 1.0, 255.0)


def _steps(y: np.ndarray, where: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dy, vy, dx, vx)``: the |steps| down and across ``y`` (step ``i`` lies between pixels
    ``i`` and ``i + 1``) and which of them lie between two pixels of ``where`` (None: all)."""
    inside = np.ones(y.shape, bool) if where is None else np.asarray(where, bool)
    dy, dx = np.abs(np.diff(y, axis=0)), np.abs(np.diff(y, axis=1))
    return dy, inside[:-1, :] & inside[1:, :], dx, inside[:, :-1] & inside[:, 1:]


def _strongest_phases(dy: np.ndarray, vy: np.ndarray, dx: np.ndarray, vx: np.ndarray) -> tuple[int, int]:
    """``(row, col)`` index mod 8 of the steps (:func:`_steps`) with the largest mean |step|
    each way, counting only the valid ones."""

    def mean(steps: np.ndarray, valid: np.ndarray) -> float:
        return float(steps[valid].mean()) if valid.any() else 0.0

    py = [mean(dy[o::8, :], vy[o::8, :]) for o in range(8)]
    px = [mean(dx[:, o::8], vx[:, o::8]) for o in range(8)]
    return int(np.argmax(py)), int(np.argmax(px))


def grid_offset(y: np.ndarray, where: np.ndarray | None = None) -> tuple[int, int]:
    """``(row, col)`` where the 8×8 grid starts: the phase of the strongest 8-periodic steps
    (between two pixels of ``where``, None: all)."""
    py, px = _strongest_phases(*_steps(y, where))
    # step i lies between pixels i and i + 1: a block starts at i + 1
    return (py + 1) % 8, (px + 1) % 8


def grid_contrast(y: np.ndarray, where: np.ndarray | None = None) -> float:
    """How blocky the luma ``y`` (grey levels) is: the mean |step| across the 8-px grid's lines
    over the mean |step| between other neighbouring pixels, each plus one grey level, counting
    only steps between two pixels of ``where`` (bool, ``y``'s shape; None: all). The grid's phase
    is, each way, the one with the strongest mean step within ``where`` (:func:`grid_offset`).
    About 1 for natural content; heavy JPEG 1.5-2.8, quality 70 about 1.1-1.5 (256-px crops of
    the bundled photos, ``benchmarks/bench_grid_boxes.py``'s boxes). 1.0 where too few pixels
    lie in ``where``."""
    dy, vy, dx, vx = _steps(y, where)
    if vx.sum() < 64 or vy.sum() < 64:
        return 1.0
    py, px = _strongest_phases(dy, vy, dx, vx)
    on_x = (np.arange(dx.shape[1]) % 8 == px)[None, :]
    on_y = (np.arange(dy.shape[0]) % 8 == py)[:, None]
    grid = np.concatenate([dx[vx & on_x], dy[vy & on_y]])
    rest = np.concatenate([dx[vx & ~on_x], dy[vy & ~on_y]])
    if grid.size == 0 or rest.size == 0:
        return 1.0
    return float((grid.mean() + 1.0) / (rest.mean() + 1.0))


def _blocks(a: np.ndarray, oy: int, ox: int) -> tuple[np.ndarray, int, int]:
    h, w = (a.shape[0] - oy) // 8 * 8, (a.shape[1] - ox) // 8 * 8
    b = a[oy : oy + h, ox : ox + w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    return b, h, w


def _unblocks(b: np.ndarray) -> np.ndarray:
    return b.transpose(0, 2, 1, 3).reshape(b.shape[0] * 8, b.shape[1] * 8)


def estimate_quality(coef: np.ndarray) -> int | None:
    """The lowest IJG quality whose table's lattice the block DCT coefficients ``coef``
    (``(..., 8, 8)``) sit on: for qualities 1-100 in turn, the coefficients of the ``FIT_FREQS``
    finest steps that lie beyond a quarter of their step must be, on average, within
    ``FIT_REL`` of their step (or ``FIT_ABS`` DCT units) of a multiple of it. A coarser table
    than the true one leaves every other true multiple half a step off, and counting the data
    from a quarter step (not from half of one) makes those count against it even where the
    true multiples are few (a smooth patch: most coefficients at one step or zero). None when
    no quality fits (not a JPEG, or not an IJG table) up to the finest tables ``MIN_STEP``
    allows."""
    c = coef.reshape(-1, 64)
    for quality in range(1, 101):
        t = quant_table(quality).reshape(64)
        idx = np.argsort(t, kind="stable")[:FIT_FREQS]
        cc, tt = c[:, idx], t[idx]
        step = float(np.median(tt))
        if step < MIN_STEP:
            return None
        counted = np.abs(cc) > tt / 4
        if counted.sum() < FIT_MIN:
            continue
        residual = (np.abs(cc - tt * np.rint(cc / tt)) / tt)[counted]
        if residual.mean() < max(FIT_REL, FIT_ABS / step):
            return quality
    return None


def _requantised(y: np.ndarray, table: np.ndarray) -> np.ndarray:
    from scipy.fft import dctn, idctn

    h, w = y.shape
    padded = np.pad(y - 128.0, 8, mode="reflect")
    acc = np.zeros_like(y)
    count = 0
    for dy in range(0, 8, 2):
        for dx in range(0, 8, 2):
            b, bh, bw = _blocks(padded, dy, dx)
            c = dctn(b, axes=(-2, -1), norm="ortho")
            c = table * np.rint(c / table)
            shifted = padded.copy()
            shifted[dy : dy + bh, dx : dx + bw] = _unblocks(idctn(c, axes=(-2, -1), norm="ortho"))
            acc += shifted[8 : 8 + h, 8 : 8 + w]
            count += 1
    return acc / count + 128.0


def jpeg_luma(y: np.ndarray, where: np.ndarray | None = None) -> np.ndarray | None:
    """The requantisation estimate of the luma ``y`` (``(H, W)``, 0-255), or None when no grid
    and quality are found; ``where`` (bool ``(H, W)``): the pixels to repair, whose whole 8×8
    blocks carry the quality fit (None: all)."""
    found = jpeg_luma_and_quality(y, where)
    return None if found is None else found[0]


def jpeg_luma_and_quality(y: np.ndarray, where: np.ndarray | None = None) -> tuple[np.ndarray, int] | None:
    """:func:`jpeg_luma` and the IJG quality it found (1-100), or None."""
    from scipy.fft import dctn

    if min(y.shape) < 16:
        return None
    oy, ox = grid_offset(y)
    blocks, _h, _w = _blocks(y - 128.0, oy, ox)
    coef = dctn(blocks, axes=(-2, -1), norm="ortho")
    if where is not None:
        inside, _, _ = _blocks(where.astype(np.float64), oy, ox)
        full = inside.min(axis=(2, 3)) > 0.5
        if full.sum() >= 4:
            coef = coef[full]
    quality = estimate_quality(coef)
    if quality is None:
        return None
    return _requantised(y, quant_table(quality)), quality
