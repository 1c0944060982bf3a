"""The paper's mask ``Bi(1 - P + A)`` (registry ``g-refine``) and its one-map ablations
(``perceptual``, ``alignment``)."""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from grefine_kit.checks import number
from grefine_kit.combiners.base import check_size, empty_mask
from grefine_kit.images.ops import at_size, dilate, feather
from grefine_kit.parts.base import PartBase
from grefine_kit.types import Mask, QualityMap

__all__ = ["AlignmentCombiner", "GRefineCombiner", "PerceptualCombiner"]


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
        size = check_size(size)
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
