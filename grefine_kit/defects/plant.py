"""Planting one local defect into a clean photo: noise, blur or JPEG blocking over a random box.

Every function is pure and seeded: the same photo (and name), kind, size range and seed give the
same defect, byte for byte (numpy's PCG64 and Pillow's JPEG encoder are deterministic).

- ``noise``: Gaussian noise, independent per RGB channel (as sensor noise), σ drawn from
  ``NOISE_SIGMA`` grey levels;
- ``blur``: a Gaussian blur of the whole photo (σ drawn from ``BLUR_SIGMA`` px) pasted inside
  the box, so the box's edges see real neighbours rather than a padded border;
- ``jpeg``: the whole photo JPEG-encoded at a quality drawn from ``JPEG_QUALITY`` and pasted
  inside the box, so the 8×8 blocks sit on the photo's own grid as in a real recompressed patch.

The box covers a fraction of the image area drawn uniformly from ``sizes`` (default 1/25 to
1/6), with an aspect ratio in [3/4, 4/3], at a uniformly random position. A box where the defect
barely shows (mean squared change below ``MIN_CHANGE``: a blur over a clear sky, say) is drawn
again, up to ``TRIES`` times, keeping the most visible one: a defect that changes nothing cannot
be found or repaired, and would only add noise to a benchmark.
"""

from __future__ import annotations

import io
import math
import zlib

import attrs
import numpy as np
from PIL import Image, ImageFilter

from grefine_kit.errors import UserError

__all__ = [
    "BLUR_SIGMA",
    "DEFAULT_SIZES",
    "JPEG_QUALITY",
    "KINDS",
    "MIN_DEFECT_SIDE",
    "NOISE_SIGMA",
    "Planted",
    "plant_defect",
]

KINDS = ("noise", "blur", "jpeg")
#: area fraction range of the defect box
DEFAULT_SIZES = (1 / 25, 1 / 6)
NOISE_SIGMA = (15.0, 30.0)  # grey levels
BLUR_SIGMA = (2.5, 5.0)  # px
JPEG_QUALITY = (5, 12)
#: the shortest side a defect box may have (px): two 16-px blocks, what a block detector resolves
MIN_DEFECT_SIDE = 32
MIN_CHANGE = 9.0  # mean squared change over the box, grey levels² (an RMS change of 3 levels)
TRIES = 20


@attrs.frozen
class Planted:
    """A photo with one planted defect.

    Attributes:
        image: the defective RGB image.
        reference: the clean photo (RGB, same size).
        region: bool ``(H, W)``, True inside the defect box.
        kind: ``noise``, ``blur`` or ``jpeg``.
        box: ``(x0, y0, x1, y1)`` of the box (x1, y1 exclusive).
        level: the defect's parameter (noise σ in grey levels, blur σ in px, JPEG quality).
        change: RMS change over the box, grey levels.
    """

    image: Image.Image = attrs.field(eq=False)
    reference: Image.Image = attrs.field(eq=False)
    region: np.ndarray = attrs.field(eq=False, repr=False)
    kind: str
    box: tuple[int, int, int, int]
    level: float
    change: float


def _check_sizes(sizes: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(s) for s in sizes)
    if not (0.0 < lo <= hi < 1.0):
        raise UserError(
            f"defect sizes must satisfy 0 < smallest <= largest < 1 (area fractions); got {lo}, {hi}"
        )
    return lo, hi


def check_photo_size(size: tuple[int, int], sizes: tuple[float, float], name: str) -> None:
    """``UserError`` (one line) when a ``(width, height)`` photo is too small for the smallest
    defect of ``sizes``: its box's shorter side (aspect up to 4/3) must reach ``MIN_DEFECT_SIDE``."""
    lo, _hi = _check_sizes(sizes)
    w, h = size
    side = math.sqrt(lo * w * h) * math.sqrt(3 / 4)
    if side < MIN_DEFECT_SIDE or min(w, h) < MIN_DEFECT_SIDE * 1.5:
        need = math.ceil(MIN_DEFECT_SIDE / math.sqrt(lo * 3 / 4))
        raise UserError(
            f"{name}: {w}x{h} is too small for a defect of {lo:.3g} of the image (its shorter side "
            f"would be {side:.0f} px, at least {MIN_DEFECT_SIDE} px are needed): use photos of at "
            f"least {need}x{need} px, or larger --sizes"
        )


def _box(rng: np.random.Generator, w: int, h: int, sizes: tuple[float, float]) -> tuple[int, int, int, int]:
    area = rng.uniform(*sizes) * w * h
    aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    bw = min(w, max(MIN_DEFECT_SIDE, round(math.sqrt(area * aspect))))
    bh = min(h, max(MIN_DEFECT_SIDE, round(area / bw)))
    x0 = int(rng.integers(0, w - bw + 1))
    y0 = int(rng.integers(0, h - bh + 1))
    return x0, y0, x0 + bw, y0 + bh


def _degraded(photo: Image.Image, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The whole photo degraded by ``kind`` (float64 RGB, 0..255) and the level drawn."""
    arr = np.asarray(photo, np.float64)
    if kind == "noise":
        sigma = float(rng.uniform(*NOISE_SIGMA))
        return arr + rng.normal(0.0, sigma, arr.shape), sigma
    if kind == "blur":
        sigma = float(rng.uniform(*BLUR_SIGMA))
        return np.asarray(photo.filter(ImageFilter.GaussianBlur(sigma)), np.float64), sigma
    if kind == "jpeg":
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        buf = io.BytesIO()
        photo.save(buf, "JPEG", quality=quality, subsampling=2)
        buf.seek(0)
        with Image.open(buf) as im:
            return np.asarray(im.convert("RGB"), np.float64), float(quality)
    raise UserError(f"unknown defect kind {kind!r}; kinds: {', '.join(KINDS)}")


def plant_defect(
    photo: Image.Image,
    kind: str,
    seed: int,
    sizes: tuple[float, float] = DEFAULT_SIZES,
    name: str = "photo",
) -> Planted:
    """Plant one ``kind`` defect into ``photo`` (see the module docstring); ``name`` labels errors."""
    if kind not in KINDS:
        raise UserError(f"unknown defect kind {kind!r}; kinds: {', '.join(KINDS)}")
    sizes = _check_sizes(sizes)
    clean = photo.convert("RGB")
    w, h = clean.size
    check_photo_size((w, h), sizes, name)
    rng = np.random.default_rng([int(seed), KINDS.index(kind), zlib.crc32(name.encode())])
    degraded, level = _degraded(clean, kind, rng)
    base = np.asarray(clean, np.float64)
    best: tuple[float, tuple[int, int, int, int]] | None = None
    for _ in range(TRIES):
        box = _box(rng, w, h, sizes)
        x0, y0, x1, y1 = box
        change = float(np.mean((np.clip(degraded[y0:y1, x0:x1], 0, 255) - base[y0:y1, x0:x1]) ** 2))
        if best is None or change > best[0]:
            best = (change, box)
        if change >= MIN_CHANGE:
            break
    assert best is not None
    change, box = best
    x0, y0, x1, y1 = box
    out = base.copy()
    out[y0:y1, x0:x1] = degraded[y0:y1, x0:x1]
    region = np.zeros((h, w), bool)
    region[y0:y1, x0:x1] = True
    image = Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")
    return Planted(
        image=image,
        reference=clean,
        region=region,
        kind=kind,
        box=box,
        level=level,
        change=math.sqrt(change),
    )
