"""Mask combiners: quality maps in, repaint mask out (docs/design.md 6.4, paper eq. 9 ``Bi(1 - P + A)``).

Conventions: quality maps are 1 = good; the deficiency ``D`` is 1 = bad; masks are 1 = repaint.
Our reading of the paper's ``Bi(1 − P + A)``: ``D = (1 − P) + A_def`` where ``A_def = 1 − A`` is
the alignment-defect map (the AQ-Map returned to users is ``A``, 1 = good). ``D`` lies in [0, 2].

Every combiner returns a :class:`~grefine_kit.types.Mask` at the image size:

- ``binary``: the pixels that may change (1 = repaint). It is what the inpainting pipeline gets,
  and outside it the refiner pastes the original pixels back exactly.
- ``soft``: the blend weight used for that paste-back; 0 everywhere outside ``binary``, 1 on the
  core deficient pixels, ramping in between so the repainted region blends into its surroundings.

Pure numpy/PIL (box filters on integral images: cost independent of the radius, no scipy).
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import attrs
import numpy as np
from PIL import Image

from grefine_kit.checks import number
from grefine_kit.parts import PartBase
from grefine_kit.types import Mask, QualityMap

__all__ = [
    "COLOUR_MATCH_MODES",
    "AlignmentCombiner",
    "Combiner",
    "GRefineCombiner",
    "PerceptualCombiner",
    "SoftCombiner",
    "at_size",
    "box_mean",
    "box_sum",
    "dilate",
    "empty_mask",
    "feather",
    "match_colour",
]


@runtime_checkable
class Combiner(Protocol):
    """Combine a perceptual and an alignment QualityMap (either may be None) into a Mask.

    ``size`` is the image's ``(width, height)``; the Mask comes back at ``(height, width)``.
    """

    def combine(
        self, perceptual: QualityMap | None, alignment: QualityMap | None, size: tuple[int, int]
    ) -> Mask: ...


# --- array helpers --------------------------------------------------------------------------


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


def empty_mask(size: tuple[int, int]) -> Mask:
    """An all-zero Mask for an image of ``size = (width, height)``."""
    w, h = size
    zeros = np.zeros((h, w), np.float32)
    return Mask(binary=zeros, soft=zeros)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be a positive (width, height); got {size}")
    return w, h


# --- combiners ------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class GRefineCombiner(PartBase):
    """The paper's mask: ``D = (1 − P) + (1 − A)``, binarised at ``threshold``, grown, feathered.

    Options:
        threshold: τ; a pixel is deficient when ``D > τ``. Default 0.5: with the alignment term
            0 this is "the perceptual map says bad is more likely than good" (``P < 0.5``, the
            decision boundary of PQ-Map's good/bad softmax); any alignment-defect region of
            weight > 0.5 is masked on its own.
        grow: dilation radius as a fraction of the image's shorter side (0.02 = 20 px at 1024):
            quality maps come from 16-px patches, so defects bleed past the map's blob.
        feather: width of the soft blending ramp outside the grown mask, same unit. The ramp
            lies entirely outside the grown mask, so every deficient pixel is fully repainted.
        min_area: if the deficient pixels (before growing) cover less than this fraction of
            the image, the mask is empty (specks are not worth a diffusion pass); the refiner
            skips stage 1 for an empty mask.
    A missing map (None) contributes no deficiency.
    """

    threshold: float = attrs.field(default=0.5, validator=number(0.0, 2.0))
    grow: float = attrs.field(default=0.02, validator=number(0.0, 0.5))
    feather: float = attrs.field(default=0.02, validator=number(0.0, 0.5))
    min_area: float = attrs.field(default=0.002, validator=number(0.0, 1.0))

    #: maps that must be present ("perceptual", "alignment"); the refiner checks this at build time
    requires: ClassVar[tuple[str, ...]] = ()

    def deficiency(
        self, perceptual: QualityMap | None, alignment: QualityMap | None, size: tuple[int, int]
    ) -> np.ndarray:
        """``(H, W)`` float32 deficiency in [0, 2] (1 = bad), at ``size = (width, height)``."""
        w, h = size
        d = np.zeros((h, w), np.float32)
        if perceptual is not None:
            d += 1.0 - at_size(perceptual, size)
        if alignment is not None:
            d += 1.0 - at_size(alignment, size)
        return d

    def _missing(self, perceptual: QualityMap | None, alignment: QualityMap | None) -> None:
        given = {"perceptual": perceptual, "alignment": alignment}
        for name in self.requires:
            if given[name] is None:
                raise ValueError(f"combiner {type(self).__name__} needs a {name} map; the recipe has none")

    def combine(
        self, perceptual: QualityMap | None, alignment: QualityMap | None, size: tuple[int, int]
    ) -> Mask:
        size = _check_size(size)
        self._missing(perceptual, alignment)
        core = (self.deficiency(perceptual, alignment, size) > self.threshold).astype(np.float32)
        if core.mean() < self.min_area or not core.any():
            return empty_mask(size)
        return self._grow_and_feather(core, size)

    def _grow_and_feather(self, core: np.ndarray, size: tuple[int, int]) -> Mask:
        short = min(size)
        grown = dilate(core, round(self.grow * short))
        # blurring a region R with a kernel of support k gives 1 on erode(R, k) and 0 beyond
        # dilate(R, k): with R = dilate(grown, k), the ramp runs from grown's edge outwards over 2k
        k = round(self.feather * short) // 2
        soft = feather(dilate(grown, k), k)
        soft = np.maximum(soft, grown)  # exact 1 on the grown mask despite float round-off
        binary = (soft > 0).astype(np.float32)
        return Mask(binary=binary, soft=soft)


@attrs.define(kw_only=True)
class PerceptualCombiner(GRefineCombiner):
    """Perceptual map only: ``D = 1 − P`` (the paper's Table 8 "PQ" ablation)."""

    requires: ClassVar[tuple[str, ...]] = ("perceptual",)

    def deficiency(
        self, perceptual: QualityMap | None, alignment: QualityMap | None, size: tuple[int, int]
    ) -> np.ndarray:
        return super().deficiency(perceptual, None, size)


@attrs.define(kw_only=True)
class AlignmentCombiner(GRefineCombiner):
    """Alignment defects only: ``D = 1 − A`` (the paper's Table 8 "AQ" ablation)."""

    requires: ClassVar[tuple[str, ...]] = ("alignment",)

    def deficiency(
        self, perceptual: QualityMap | None, alignment: QualityMap | None, size: tuple[int, int]
    ) -> np.ndarray:
        return super().deficiency(None, alignment, size)


@attrs.define(kw_only=True)
class SoftCombiner(PartBase):
    """Soft deficiency, no binarisation: the blend weight follows ``D`` itself.

    ``soft = clip((D − low) / (high − low), 0, 1)``, smoothed over ``feather``; ``binary`` is
    its support (everything that may change). A pixel at ``D <= low`` is kept exactly, one at
    ``D >= high`` is fully repainted, in between it is mixed. ``min_area`` as in ``g-refine``
    (measured on ``D > low``).
    """

    low: float = attrs.field(default=0.25, validator=number(0.0, 2.0))
    high: float = attrs.field(default=0.75, validator=number(0.0, 2.0))
    feather: float = attrs.field(default=0.02, validator=number(0.0, 0.5))
    min_area: float = attrs.field(default=0.002, validator=number(0.0, 1.0))

    requires: ClassVar[tuple[str, ...]] = ()

    def __attrs_post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be greater than low ({self.low})")

    def combine(
        self, perceptual: QualityMap | None, alignment: QualityMap | None, size: tuple[int, int]
    ) -> Mask:
        size = _check_size(size)
        d = GRefineCombiner.deficiency(GRefineCombiner(), perceptual, alignment, size)
        weight = np.clip((d - self.low) / (self.high - self.low), 0.0, 1.0).astype(np.float32)
        if (weight > 0).mean() < self.min_area or not weight.any():
            return empty_mask(size)
        soft = feather(weight, round(self.feather * min(size)))
        return Mask(binary=(soft > 0).astype(np.float32), soft=soft)
