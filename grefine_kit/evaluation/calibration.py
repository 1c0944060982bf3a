"""Fitting the thresholds that decide how much gets refined, from images with MOS (``grefine calibrate``).

Pure functions over per-image numbers (no model): ``fit_calibration`` takes, per rated image, the
perceptual deficiency ``1 - P`` and the AQ-Map phrase numbers, and returns the mask threshold τ,
``a_bound`` and ``beta`` such that the best-rated quarter of the images gets little or no mask
and the worst-rated quarter a real one. The rules (docs/evaluation.md, "Calibrating"):

- ``a_bound``: the value that best separates the quarters by "some noun counts as missing":
  the share of worst-quarter images with a noun score below it minus the share of best-quarter
  images, maximised over a grid of 0.001; the middle of the maximising values.
- ``beta``: the ``beta_quantile`` quantile of the best quarter's phrase scores, so that phrases
  drawn as well as in the best-rated images cost (almost) nothing in the cask score.
- τ: the smallest threshold (grid 0.005) at which the median mask area of the best quarter is at
  most ``best_area``, with ``D = (1 - P) + A_def`` (``A_def`` from the fitted ``a_bound``).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from grefine_kit.errors import UserError
from grefine_kit.indicators.alignment_rules import classify_defects, defect_map

__all__ = ["Calibration", "CalibrationItem", "fit_calibration", "mask_areas"]

_TAU_GRID = np.round(np.arange(0.0, 2.0 + 1e-9, 0.005), 3)
_BOUND_GRID = np.round(np.arange(0.0, 1.0 + 1e-9, 0.001), 3)


def _floats(value: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in value)


def _ints(value: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen
class CalibrationItem:
    """One rated image: its MOS, ``1 - P`` (``(h, w)``, any working size; None without a perceptual
    map) and AQ-Map's phrase numbers (empty without an alignment indicator or without nouns)."""

    mos: float
    perceptual_deficiency: np.ndarray | None = attrs.field(default=None, eq=False)
    phrase_scores: tuple[float, ...] = attrs.field(default=(), converter=_floats)
    noun_scores: tuple[float, ...] = attrs.field(default=(), converter=_floats)
    noun_maps: np.ndarray | None = attrs.field(default=None, eq=False)
    ancestors: tuple[int, ...] = attrs.field(default=(), converter=_ints)

    def deficiency(self, a_bound: float | None) -> np.ndarray:
        """``D = (1 - P) + A_def`` at ``a_bound`` (the g-refine combiner's, before growing)."""
        shapes = [m.shape for m in (self.perceptual_deficiency,) if m is not None]
        if self.noun_maps is not None and len(self.noun_maps):
            shapes.append(self.noun_maps.shape[1:])
        if not shapes:
            raise UserError("calibration needs a perceptual map or alignment maps per image")
        size = shapes[0]
        d = np.zeros(size, np.float32)
        if self.perceptual_deficiency is not None:
            d += self.perceptual_deficiency
        if a_bound is not None and self.noun_scores and self.noun_maps is not None:
            defects = classify_defects(self.phrase_scores, self.noun_scores, a_bound)
            d += defect_map(defects, self.ancestors, self.noun_maps, size)
        return d


@attrs.frozen
class Calibration:
    """The fitted values and what they give on the calibration set (median mask areas)."""

    threshold: float
    a_bound: float | None
    beta: float | None
    n_images: int
    n_quarter: int
    best_area: float
    worst_area: float
    notes: tuple[str, ...] = ()

    def set_lines(self) -> list[str]:
        """``--set`` arguments that apply the fit to a recipe."""
        lines = [f"combiner.threshold={self.threshold:g}"]
        if self.a_bound is not None:
            lines.append(f"indicators.alignment.a_bound={self.a_bound:g}")
        if self.beta is not None:
            lines.append(f"indicators.alignment.beta={self.beta:g}")
        return lines

    def toml(self) -> str:
        """The fit as a recipe overlay (TOML tables to merge into a recipe)."""
        out = ["[combiner]", f"threshold = {self.threshold:g}"]
        if self.a_bound is not None or self.beta is not None:
            out += ["", "[indicators.alignment]"]
            if self.a_bound is not None:
                out.append(f"a_bound = {self.a_bound:g}")
            if self.beta is not None:
                out.append(f"beta = {self.beta:g}")
        return "\n".join(out) + "\n"


def mask_areas(items: Sequence[CalibrationItem], threshold: float, a_bound: float | None) -> np.ndarray:
    """Per item, the fraction of the image with ``D > threshold``."""
    return np.array([float((it.deficiency(a_bound) > threshold).mean()) for it in items])


def _quarters(items: Sequence[CalibrationItem]) -> tuple[list[CalibrationItem], list[CalibrationItem]]:
    order = sorted(range(len(items)), key=lambda i: items[i].mos)
    q = max(1, len(items) // 4)
    return [items[i] for i in order[-q:]], [items[i] for i in order[:q]]


def _fit_a_bound(best: Sequence[CalibrationItem], worst: Sequence[CalibrationItem]) -> float | None:
    def lowest(group: Sequence[CalibrationItem]) -> np.ndarray:
        return np.array([min(it.noun_scores) if it.noun_scores else np.inf for it in group])

    lo_best, lo_worst = lowest(best), lowest(worst)
    if np.isinf(lo_best).all() and np.isinf(lo_worst).all():
        return None
    grid = _BOUND_GRID[:, None]
    gap = (lo_worst[None, :] < grid).mean(1) - (lo_best[None, :] < grid).mean(1)
    winners = _BOUND_GRID[gap == gap.max()]
    return round(float((winners.min() + winners.max()) / 2), 3)


def fit_calibration(
    items: Sequence[CalibrationItem],
    *,
    best_area: float = 0.01,
    worst_area: float = 0.05,
    beta_quantile: float = 0.1,
) -> Calibration:
    """Fit τ, ``a_bound`` and ``beta`` (module docstring). Needs at least 8 rated images."""
    if len(items) < 8:
        raise UserError(f"calibration needs at least 8 rated images (two per quarter); got {len(items)}")
    if not (0.0 <= best_area < 1.0 and 0.0 < worst_area <= 1.0 and 0.0 <= beta_quantile <= 1.0):
        raise UserError("need 0 <= best_area < 1, 0 < worst_area <= 1 and 0 <= beta_quantile <= 1")
    best, worst = _quarters(items)
    a_bound = _fit_a_bound(best, worst)
    phrase = [s for it in best for s in it.phrase_scores]
    beta = round(float(np.clip(np.quantile(phrase, beta_quantile), 0.01, 1.0)), 3) if phrase else None
    deficiency_best = [it.deficiency(a_bound) for it in best]

    def best_median(tau: float) -> float:
        return float(np.median([float((d > tau).mean()) for d in deficiency_best]))

    threshold = next((float(tau) for tau in _TAU_GRID if best_median(tau) <= best_area), float(_TAU_GRID[-1]))
    got_best = best_median(threshold)
    got_worst = float(np.median(mask_areas(worst, threshold, a_bound)))
    notes = []
    if got_worst < worst_area:
        notes.append(
            f"the worst-rated quarter gets a median mask of {got_worst:.3f} < {worst_area}: on this data "
            "the quality maps do not separate the best and worst images well"
        )
    return Calibration(
        threshold=threshold,
        a_bound=a_bound,
        beta=beta,
        n_images=len(items),
        n_quarter=len(best),
        best_area=got_best,
        worst_area=got_worst,
        notes=tuple(notes),
    )
