"""``piqe-map``: a weight-free local quality map: PIQE's block distortion plus a loss-of-detail term.

Per 16×16 block (see :mod:`grefine_kit.indicators.piqe` for the PIQE part):

- ``D_piqe`` in [0, 1]: PIQE's block distortion ``D_k`` (noticeable artifact ``1 − v_k``, noise
  ``v_k``, both 1, inactive 0), clipped to [0, 1] (the official pooling does not clip it).
- ``L`` in [0, 1], *loss of detail*: PIQE judges flat blocks as inactive, so a blurred patch
  inside textured surroundings reads as "fine". With ``E_k`` the block's high-frequency energy
  (mean of ``(Y − μ)²``, the MSCN numerator) and ``E_ref`` the median ``E`` of the blocks within
  ``neighbourhood`` × the shorter side, the amplitude ratio ``r = sqrt(E_k / E_ref)`` gives
  ``L = clip((detail_keep − r) / (detail_keep − detail_lost), 0, 1)``, counted only where the
  neighbourhood is textured (``E_ref >= texture_floor``) and the block keeps some coarse
  structure (``structure_floor``: a flat sky or bokeh is smooth by nature, not blurred). The
  median (not the mean) keeps the reference on the surroundings while the defect covers less
  than half of the window.
- The block's deficiency is ``max(D_piqe, L)``: the two describe different failures (too much
  unstructured energy vs too little), so either alone is enough, and neither adds to the other.
  A ``(2·smooth + 1)²``-block median then drops isolated flagged blocks.

The map is ``1 − deficiency`` (1 = good), upsampled from block centres to the image's ``(H, W)``
(bilinear, so a defect's edge lands between the blocks that straddle it). The score is PIQE's own
pooled score mapped to [0, 1]: ``score = 1 − PIQE / 100`` (PIQE is 0..100, lower = better); the
loss-of-detail term shapes the map only, so the score stays comparable with published PIQE
figures. ``details`` has the raw PIQE and per-criterion block fractions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np
from attrs import validators as v
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from grefine_kit.images.heatmaps import upsample_blocks
from grefine_kit.indicators.piqe import BLOCK, grey_levels, pad_to_blocks, piqe
from grefine_kit.parts.base import PartBase
from grefine_kit.parts.roles import PERCEPTUAL
from grefine_kit.types import QualityMap

__all__ = ["PiqeMap", "detail_loss"]


def _not_bool(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a number, not a boolean ({value!r})")


def _number(lo: float, hi: float) -> list[Callable[[Any, attrs.Attribute[Any], Any], None]]:
    return [v.instance_of((int, float)), _not_bool, v.ge(lo), v.le(hi)]


def _neighbourhood_median(energy: np.ndarray, radius: int) -> np.ndarray:
    """Median of ``energy`` over the ``(2r+1)²`` blocks around each block (reflected borders).

    The median is taken at every ``stride``-th block and interpolated in between: the reference
    varies slowly at this scale, and it keeps the cost flat as images grow."""
    if radius <= 0:
        return energy.copy()
    r = min(radius, max(energy.shape) - 1)
    padded = np.pad(energy, r, mode="reflect" if min(energy.shape) > r else "edge")
    windows = sliding_window_view(padded, (2 * r + 1, 2 * r + 1))
    stride = max(1, r // 4)
    sampled = windows[::stride, ::stride]
    med = np.median(sampled.reshape(*sampled.shape[:2], -1), axis=-1).astype(np.float32)
    if stride == 1:
        return med
    # sample i sits at block i * stride: interpolate linearly between samples along each axis
    # (np.interp holds the last sample's value past the end)
    for axis, n in ((0, energy.shape[0]), (1, energy.shape[1])):
        med = _lerp(med, np.arange(n) / stride, axis)
    return med.astype(np.float32)


def _lerp(values: np.ndarray, at: np.ndarray, axis: int) -> np.ndarray:
    """``values`` sampled at fractional indices ``at`` along ``axis`` (linear; clamped at the end)."""
    last = values.shape[axis] - 1
    i0 = np.minimum(np.floor(at).astype(int), last)
    i1 = np.minimum(i0 + 1, last)
    frac = np.where(i1 > i0, at - i0, 0.0)
    shape = [1, 1]
    shape[axis] = len(at)
    frac = frac.reshape(shape)
    return np.take(values, i0, axis=axis) * (1.0 - frac) + np.take(values, i1, axis=axis) * frac


def detail_loss(
    energy: np.ndarray,
    *,
    radius: int,
    keep: float = 0.5,
    lost: float = 0.25,
    floor: float = 1.0,
) -> np.ndarray:
    """Per-block loss of detail in [0, 1] from per-block high-frequency ``energy`` (grey levels²).

    1 where the block's amplitude is at most ``lost`` × its neighbourhood's median, 0 from ``keep``
    up, linear between; 0 wherever the neighbourhood median is below ``floor`` (nothing to lose)."""
    ref = _neighbourhood_median(energy, radius)
    ratio = np.sqrt(energy / np.maximum(ref, 1e-12))
    loss = np.clip((keep - ratio) / (keep - lost), 0.0, 1.0)
    loss[ref < floor] = 0.0
    return loss.astype(np.float32)


def _block_structure(grey: np.ndarray) -> np.ndarray:
    """Per block, the variance of its sixteen 4×4-px cell means (grey levels²): structure at
    4-16 px, which a moderate blur keeps but a flat (defocused, sky) block lacks. The image is
    padded to whole blocks as PIQE pads it, so the grid is PIQE's."""
    grey = pad_to_blocks(grey)
    h, w = grey.shape
    cells = grey.astype(np.float64).reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
    n = BLOCK // 4
    per_block = cells.reshape(h // BLOCK, n, w // BLOCK, n).swapaxes(1, 2).reshape(h // BLOCK, w // BLOCK, -1)
    return per_block.var(axis=-1).astype(np.float32)


def _block_median(values: np.ndarray, radius: int) -> np.ndarray:
    """Median over (2r+1)² blocks (edges replicated): drops isolated flagged blocks, keeps regions."""
    if radius <= 0:
        return values
    padded = np.pad(values, radius, mode="edge")
    win = sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1))
    return np.median(win.reshape(*values.shape, -1), axis=-1).astype(np.float32)


def _block_energy(high_pass: np.ndarray) -> np.ndarray:
    h, w = high_pass.shape
    sq = (high_pass.astype(np.float64)) ** 2
    return sq.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(1, 3)).astype(np.float32)


@attrs.define(kw_only=True)
class PiqeMap(PartBase):
    """PIQE + loss-of-detail quality map (no weights, numpy only; see the module docstring).

    Options:
        activity_threshold: MSCN block variance above which a block is active (paper: 0.1).
        segment_threshold: edge-segment deviation below which an active block has a noticeable
            artifact (paper: 0.1).
        detail: add the loss-of-detail term (default True; False gives PIQE's own block map).
        neighbourhood: reference window half-width as a fraction of the shorter side (0.25: a
            window of half the image, so a defect of up to about a quarter of the side still
            leaves the median on its surroundings).
        detail_keep / detail_lost: amplitude ratios (block / neighbourhood) at which the loss is
            0 and 1 (0.5, 0.25: a Gaussian blur of σ ≥ 2 px removes well over 75% of the ``Y − μ``
            amplitude, while natural texture varies within a factor of 2 locally).
        texture_floor: the neighbourhood's median energy (grey levels², 1.0 = an amplitude of one
            grey level) below which no loss is counted: around a flat sky there is nothing to lose.
        structure_floor: a block's structure at 4-16 px (variance of its 4×4-px cell means,
            grey levels²) below which no loss is counted: it is flat by nature (sky, bokeh),
            whereas a blurred textured patch keeps its coarse structure.
        smooth: radius in blocks of the median filter over the block deficiency (2: 5×5 blocks),
            which drops isolated flagged blocks (PIQE flags single blocks on sharp natural
            edges) and keeps regions about 3 blocks across or more.
        max_side: downscale (area filter) images whose longer side exceeds this before scoring
            (None = full resolution, the default; PIQE is defined per 16-px block, so scale
            changes its values). The map is returned at the input's size either way.
    """

    activity_threshold: float = attrs.field(default=0.1, validator=_number(0.0, 100.0))
    segment_threshold: float = attrs.field(default=0.1, validator=_number(0.0, 100.0))
    detail: bool = attrs.field(default=True, validator=v.instance_of(bool))
    neighbourhood: float = attrs.field(default=0.25, validator=_number(0.0, 1.0))
    detail_keep: float = attrs.field(default=0.5, validator=_number(0.0, 1.0))
    detail_lost: float = attrs.field(default=0.25, validator=_number(0.0, 1.0))
    texture_floor: float = attrs.field(default=1.0, validator=_number(0.0, 1e6))
    structure_floor: float = attrs.field(default=4.0, validator=_number(0.0, 1e6))
    smooth: int = attrs.field(default=2, validator=[v.instance_of(int), _not_bool, v.ge(0), v.le(8)])
    max_side: int | None = attrs.field(
        default=None, validator=v.optional([v.instance_of(int), _not_bool, v.ge(BLOCK)])
    )

    needs_prompt: ClassVar[bool] = False
    #: which MOS column ``grefine evaluate`` compares against
    quality_kind: ClassVar[str] = PERCEPTUAL
    name: ClassVar[str] = "piqe-map"

    def __attrs_post_init__(self) -> None:
        if self.detail and not self.detail_lost < self.detail_keep:
            raise ValueError(
                f"detail_lost ({self.detail_lost}) must be below detail_keep ({self.detail_keep})"
            )

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        """One QualityMap per RGB image: map ``(H, W)`` in [0, 1] (1 = good), score = 1 − PIQE/100."""
        return [self._one(image) for image in images]

    def _one(self, image: Image.Image) -> QualityMap:
        size = image.size
        work = image.convert("RGB")
        if self.max_side is not None and max(size) > self.max_side:
            scale = self.max_side / max(size)
            work = work.resize(
                (max(1, round(size[0] * scale)), max(1, round(size[1] * scale))), Image.Resampling.BOX
            )
        grey = grey_levels(np.asarray(work))
        padded = grey.shape[0] < BLOCK or grey.shape[1] < BLOCK
        if padded:  # PIQE needs one whole block: replicate the border of a tiny image
            grey = np.pad(
                grey,
                ((0, max(0, BLOCK - grey.shape[0])), (0, max(0, BLOCK - grey.shape[1]))),
                mode="edge",
            )
        result = piqe(
            grey, activity_threshold=self.activity_threshold, segment_threshold=self.segment_threshold
        )
        deficiency = np.clip(result.distortion, 0.0, 1.0)
        loss = np.zeros_like(deficiency)
        if self.detail:
            radius = round(self.neighbourhood * min(deficiency.shape))
            loss = detail_loss(
                _block_energy(result.high_pass),
                radius=radius,
                keep=self.detail_keep,
                lost=self.detail_lost,
                floor=self.texture_floor,
            )
            loss[_block_structure(grey) < self.structure_floor] = 0.0
            deficiency = np.maximum(deficiency, loss)
        deficiency = _block_median(deficiency, self.smooth)
        block_size = (deficiency.shape[1] * BLOCK, deficiency.shape[0] * BLOCK)
        qmap = upsample_blocks(1.0 - deficiency, work.size if not padded else block_size, BLOCK)
        if qmap.shape != (size[1], size[0]):
            qmap = _resize(qmap[: work.size[1], : work.size[0]], size)
        details = {
            "piqe": result.score,
            "active_fraction": float(result.active.mean()),
            "artifact_fraction": float(result.artifact.mean()),
            "noise_fraction": float(result.noise.mean()),
            "detail_loss_fraction": float((loss > 0.5).mean()),
            "blocks": [int(deficiency.shape[0]), int(deficiency.shape[1])],
            "scored_size": [int(work.size[0]), int(work.size[1])],
            # per-block arrays (rows, columns) for analysis; JSON reports leave them out
            "block_deficiency": deficiency,
            "piqe_blocks": result.distortion,
            "detail_loss_blocks": loss,
            "active_blocks": result.active,
            "artifact_blocks": result.artifact,
            "noise_blocks": result.noise,
        }
        return QualityMap(map=qmap, score=1.0 - result.score / 100.0, indicator=self.name, details=details)


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    out = Image.fromarray(np.ascontiguousarray(arr, np.float32), "F").resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(out, np.float32), 0.0, 1.0)
